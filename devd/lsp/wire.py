"""How devd's protocol models go on the wire: field kinds and names.

As lsprotocol does for LSP: snake_case attributes, camelCase on the wire. A field made with
``opt()`` may be absent on the wire (TypeScript ``name?``): it is left out when it holds its
default; ``req()`` is required; ``sent()`` has a default and is always sent. The models are
declared in devd/lsp/spinmodels.py and devd/lsp/flowmodels.py, tabled by method in
devd/lsp/models.py, read from JSON by devd/lsp/strict.py.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import attrs


class _Unset:
    """The default of a field whose ``null`` means something else than its absence."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def opt(default: Any = None, doc: str = "") -> Any:
    """A field that may be absent on the wire; left out when it holds ``default``."""
    return attrs.field(default=default, metadata={"omit": True, "doc": doc})


def req(doc: str = "", hint: str = "") -> Any:
    """A required field; ``hint`` ends the message when a request lacks it."""
    return attrs.field(metadata={"doc": doc, "hint": hint})


def sent(default: Any = None, doc: str = "") -> Any:
    """A field with a default that is always on the wire (``null`` when unset)."""
    factory = default if callable(default) else None
    if factory is not None:
        return attrs.field(factory=factory, metadata={"doc": doc})
    return attrs.field(default=default, metadata={"doc": doc})


def camel(name: str) -> str:
    """A snake_case name as the wire spells it (camelCase)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class Field(NamedTuple):
    """A model's field, whether the model is an attrs class or a dataclass (the spin's
    report and its rows are the core's dataclasses, devd/common/report.py)."""

    name: str
    type: Any  # resolved
    metadata: Mapping[str, Any]
    required: bool


def is_model(cls: Any) -> bool:
    """Whether ``cls`` is a class the protocol reads and writes field by field."""
    return isinstance(cls, type) and (attrs.has(cls) or dataclasses.is_dataclass(cls))


def fields(cls: type) -> list[Field]:
    """The fields of a model, in order, their types resolved."""
    hints = typing.get_type_hints(cls)
    if attrs.has(cls):
        return [Field(a.name, hints.get(a.name, a.type), a.metadata, a.default is attrs.NOTHING)
                for a in attrs.fields(cls)]
    return [Field(f.name, hints[f.name], f.metadata, f.default is dataclasses.MISSING
                  and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls)]


def nested_models(roots: Any) -> Iterator[type]:
    """The models ``roots`` are and every model their fields hold, each once."""
    seen: set[type] = set()
    stack = list(roots)
    while stack:
        tp = stack.pop()
        if is_model(tp):
            if tp in seen:
                continue
            seen.add(tp)
            yield tp
            stack += [f.type for f in fields(tp)]
        else:
            stack += list(typing.get_args(tp))


def wire_name(field: Any) -> str:
    """The field's name on the wire: camelCase."""
    return camel(field.name)


def is_optional(field: Any) -> bool:
    """Whether the field may be absent on the wire."""
    return bool(field.metadata.get("omit"))



def json_type(value: Any) -> str:
    """The JSON type of a decoded value, as messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__

