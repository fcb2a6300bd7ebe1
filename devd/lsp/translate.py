"""Between JSON-RPC and the core: request params to plain values and paths, core values
to their wire JSON. Shared by the handlers, the language features and the server."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlparse

from pygls.exceptions import JsonRpcInvalidParams

from ..result import SpinResult


def plain(value: Any) -> Any:
    """Custom-method params arrive as pygls attribute objects: make them dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def uri_to_path(uri: str) -> str:
    """The absolute path of a ``file:`` URI (or of a bare path); other schemes are refused."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise JsonRpcInvalidParams(f"only file: URIs are supported, got '{uri}'")
    return os.path.abspath(unquote(parsed.path) if parsed.scheme else uri)


def required_path(args: dict[str, Any], method: str) -> str:
    """The flow file a devd/* request names in its ``uri``, which it must give."""
    uri = args.get("uri")
    if not uri:
        raise JsonRpcInvalidParams(f"{method} needs 'uri' (the flow file)")
    return uri_to_path(uri)


def spin_json(result: SpinResult, uri: str, card_html: bool = True) -> dict[str, Any]:
    """The wire form of a spin; without ``card_html`` the cards are named, not included
    (an editor that shows them through devd/card need not receive ~1 MB per card twice)."""
    data = result.to_json()
    data["uri"] = uri
    if not card_html:
        data["cards"] = [{k: v for k, v in card.items() if k != "html"}
                         for card in data["cards"]]
    return data


def bad_request_json(message: str, uri: str | None, path: str | None) -> dict[str, Any]:
    """A spin that could not start: same shape as a failed spin, with a one-line message."""
    return {"ok": False, "uri": uri, "flow": None, "step": None, "durationMs": 0,
            "artifacts": [], "stdout": "", "stderr": "", "nextSteps": [], "cards": [],
            "error": {"type": "devd.BadRequest", "message": message, "file": path,
                      "line": None, "traceback": ""}}
