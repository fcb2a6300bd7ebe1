"""TypeScript for the VS Code extension, generated from the protocol's models.

``python -m devd.lsp.tsgen [FILE]`` writes vscode-extension/src/protocol.ts (``make
protocol-ts``); tests/test_protocol_models.py fails when the file in the tree is not what
this renders, so the extension compiles (strict) against the daemon's own shapes.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from . import models, wire

TARGET = Path(__file__).resolve().parents[2] / "vscode-extension" / "src" / "protocol.ts"

HEADER = """\
/**
 * The daemon's JSON-RPC shapes (docs/protocol.md), generated from devd/lsp/models.py by
 * devd/lsp/tsgen.py: do not edit, run `make protocol-ts`.
 */

import { NotificationType, RequestType } from "vscode-jsonrpc";
"""


def ts_type(tp: Any) -> str:
    """The TypeScript spelling of a model field's Python annotation."""
    if tp is type(None) or tp is None:
        return "null"
    if tp is Any:
        return "unknown"
    if tp is str:
        return "string"
    if tp in (int, float):
        return "number"
    if tp is bool:
        return "boolean"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return " | ".join(f'"{v}"' if isinstance(v, str) else str(v).lower() for v in args)
    if origin in (typing.Union, types.UnionType):
        parts = [ts_type(a) for a in args]
        return " | ".join(dict.fromkeys(parts))
    if origin is list:
        inner = ts_type(args[0])
        return f"({inner})[]" if " | " in inner else f"{inner}[]"
    if origin is dict:
        return f"Record<{ts_type(args[0])}, {ts_type(args[1])}>"
    if wire.is_model(tp):
        return tp.__name__
    raise TypeError(f"no TypeScript type for {tp!r}")


def _doc(text: str | None, indent: str) -> list[str]:
    """A one-paragraph TSDoc comment (reST ``code`` becomes Markdown's)."""
    if not text:
        return []
    first = re.sub(r"``(.+?)``", r"`\1`", " ".join(text.strip().split("\n\n")[0].split()))
    return [f"{indent}/** {first} */"]


def interface(cls: type) -> str:
    """One model as a TypeScript interface."""
    if not wire.fields(cls):  # an empty interface would accept any value at all
        empty = f"export type {cls.__name__} = Record<string, never>;"
        return "\n".join([*_doc(cls.__doc__, ""), empty])
    lines = [*_doc(cls.__doc__, ""), f"export interface {cls.__name__} {{"]
    for field in wire.fields(cls):
        lines += _doc(field.metadata.get("doc"), "  ")
        mark = "?" if wire.is_optional(field) else ""
        lines.append(f"  {wire.wire_name(field)}{mark}: {ts_type(field.type)};")
    return "\n".join([*lines, "}"])


def _method_key(method: str) -> str:
    return method.removeprefix("devd/")


def render() -> str:
    """The whole of protocol.ts."""
    parts = [HEADER.rstrip("\n")]
    parts += [interface(cls) for cls in models.models()]
    names = [*models.REQUESTS, *models.NOTIFICATIONS]
    parts.append("export const Methods = {\n"
                 + "".join(f'  {_method_key(m)}: "{m}",\n' for m in names)
                 + "} as const;")
    # Typed constants (as rust-analyzer's lsp_ext.ts): `client.sendRequest(Requests.spin, params)`
    # and `client.onNotification(Notifications.log, (p) => ...)` are checked by the compiler.
    parts.append("/** Each request, typed: `sendRequest(Requests.x, params)` checks both ends. */\n"
                 "export const Requests = {\n"
                 + "".join(f"  {_method_key(m)}: new RequestType<{p.__name__}, {r.__name__}, void>"
                           f"(Methods.{_method_key(m)}),\n"
                           for m, (p, r) in models.REQUESTS.items())
                 + "} as const;")
    parts.append("/** Each notification, typed: `onNotification(Notifications.x, (p) => ...)`. */\n"
                 "export const Notifications = {\n"
                 + "".join(f"  {_method_key(m)}: new NotificationType<{p.__name__}>"
                           f"(Methods.{_method_key(m)}),\n"
                           for m, p in models.NOTIFICATIONS.items())
                 + "} as const;")
    return "\n\n".join(parts) + "\n"


def main(argv: list[str]) -> None:
    target = Path(argv[0]) if argv else TARGET
    target.write_text(render())
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
