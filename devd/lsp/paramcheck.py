"""The check of devd's request params against their models, before cattrs structures them:
cattrs would turn ``5`` into ``"5"`` for a string field, and its errors do not read as one
line. Each problem is one line naming the field in its JSON spelling."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import attrs

from .models import REQUESTS
from .wire import json_type, wire_name


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def _resolved(cls: type) -> dict[str, Any]:
    attrs.resolve_types(cls)
    return {a.name: a.type for a in attrs.fields(cls)}


def _alternatives(tp: Any) -> list[Any]:
    """The types a union allows, ``None`` left out (null is the same as absent)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [t for t in typing.get_args(tp) if t is not type(None)]
    return [tp]


def _json_kinds(tp: Any) -> tuple[str, ...]:
    """The JSON types a Python annotation accepts (empty: any)."""
    kinds: list[str] = []
    for alt in _alternatives(tp):
        origin = typing.get_origin(alt) or alt
        if alt is Any:
            return ()
        if origin is Literal:
            kinds += [json_type(v) for v in typing.get_args(alt)]
        elif origin is bool:
            kinds.append("boolean")
        elif origin is int:
            kinds.append("integer")
        elif origin is float:
            kinds += ["integer", "number"]
        elif origin is str:
            kinds.append("string")
        elif origin is list:
            kinds.append("array")
        elif origin is dict or attrs.has(origin):
            kinds.append("object")
    return tuple(dict.fromkeys(kinds))


def _problem(method: str, path: str, value: Any, tp: Any) -> str | None:
    """What is wrong with one value of the params (None: nothing), nested models and
    elements included."""
    kinds = _json_kinds(tp)
    if kinds and json_type(value) not in kinds:
        wanted = " or ".join(f"{_article(k)} {k}" for k in kinds)
        return f"{method}: '{path}' must be {wanted}, got {json_type(value)}"
    for alt in _alternatives(tp):
        origin = typing.get_origin(alt)
        if attrs.has(alt) and isinstance(value, dict):
            return _fields_problem(method, f"{path}.", value, alt)
        if origin is list and isinstance(value, list):
            (element,) = typing.get_args(alt)
            items: Any = enumerate(value)
        elif origin is dict and isinstance(value, dict):
            element = typing.get_args(alt)[1]
            items = value.items()
        else:
            continue
        for key, item in items:
            problem = _problem(method, f"{path}[{key!r}]", item, element)
            if problem is not None:
                return problem
    return None


def _fields_problem(method: str, prefix: str, params: dict[str, Any], cls: type) -> str | None:
    hints = _resolved(cls)
    for field in attrs.fields(cls):
        name = prefix + wire_name(field)
        value = params.get(wire_name(field))
        if value is None:
            if field.default is attrs.NOTHING:
                hint = field.metadata.get("hint")
                return f"{method} needs '{name}'" + (f" ({hint})" if hint else "")
            continue
        problem = _problem(method, name, value, hints[field.name])
        if problem is not None:
            return problem
    return None


def check_params(method: str, params: Any) -> str | None:
    """What is wrong with the params of one of devd's methods, in one line naming the
    field in its JSON spelling (None: nothing, or not a devd method). ``null`` is the same
    as absent; unknown fields are ignored."""
    if method not in REQUESTS:
        return None
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return f"{method}: params must be an object, got {json_type(params)}"
    return _fields_problem(method, "", params, REQUESTS[method][0])
