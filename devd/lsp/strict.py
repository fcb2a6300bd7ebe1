"""The one reader of devd's models from JSON: cattrs with JSON's types kept strictly, and
what it refuses said in one line naming the field as the JSON spells it.

cattrs alone would turn ``5`` into ``"5"`` for a string field and ``true`` into ``1`` for an
integer; here a string field takes a string, an integer an integer (not a boolean), a number
an integer or a number, a union the first of its types the value is. ``null`` is the same
as absent for a field that cannot be null; unknown fields are ignored. Requests are read
through it (devd/lsp/rpcio.py), so what a handler gets is what its model says.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

import cattrs
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    list_structure_factory,
    mapping_structure_factory,
)
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import format_exception

from .wire import camel, fields, is_model, json_type, wire_name

T = TypeVar("T")


class WireTypeError(TypeError):
    """A value of another JSON type than its field's."""

    def __init__(self, kinds: tuple[str, ...], got: Any) -> None:
        self.kinds = kinds
        self.got = json_type(got)
        super().__init__(f"must be {_one_of(kinds)}, got {self.got}")


def _one_of(kinds: tuple[str, ...]) -> str:
    return " or ".join(f"{'an' if k[0] in 'aeiou' else 'a'} {k}" for k in kinds)


def _alternatives(tp: Any) -> list[Any]:
    """The types a union allows, ``None`` left out."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [t for t in typing.get_args(tp) if t is not type(None)]
    return [tp]


def _nullable(tp: Any) -> bool:
    return tp is Any or type(None) in typing.get_args(tp)


def json_kinds(tp: Any) -> tuple[str, ...]:
    """The JSON types a Python annotation accepts (empty: any)."""
    kinds: list[str] = []
    for alt in _alternatives(tp):
        origin = typing.get_origin(alt) or alt
        if alt is Any:
            return ()
        if origin is Literal:
            kinds += [json_type(v) for v in typing.get_args(alt)]
        else:
            kinds += _KINDS.get(origin, ("object",) if is_model(origin) else ())
    return tuple(dict.fromkeys(kinds))


_KINDS: dict[Any, tuple[str, ...]] = {
    bool: ("boolean",), int: ("integer",), float: ("integer", "number"), str: ("string",),
    list: ("array",), tuple: ("array",), dict: ("object",),
}


def _checked(tp: Any, structure: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``structure`` for values of ``tp``'s JSON type only."""
    kinds = json_kinds(tp)

    def hook(value: Any, _: Any) -> Any:
        if kinds and json_type(value) not in kinds:
            raise WireTypeError(kinds, value)
        return structure(value, tp)
    return hook


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


@functools.cache
def converter() -> cattrs.Converter:
    """The strict converter: devd's models, their fields and elements, read from JSON."""
    conv = cattrs.Converter(detailed_validation=True)
    for scalar in (str, int, float, bool):
        conv.register_structure_hook(scalar, _checked(scalar, lambda value, _: value))

    def union(tp: Any) -> Callable[[Any, Any], Any]:
        def hook(value: Any, _: Any) -> Any:
            if value is None and _nullable(tp):
                return None
            for alt in _alternatives(tp):
                if not json_kinds(alt) or json_type(value) in json_kinds(alt):
                    return conv.structure(value, alt)
            raise WireTypeError(json_kinds(tp), value)
        return hook

    conv.register_structure_hook_factory(_is_union, union)
    # cattrs' own list, tuple and dict structuring, for values of their JSON type only
    for origin, factory in ((list, list_structure_factory),
                            (tuple, homogenous_tuple_structure_factory),
                            (dict, mapping_structure_factory)):
        conv.register_structure_hook_factory(
            functools.partial(_has_origin, origin),
            functools.partial(_checked_factory, factory, conv))
    conv.register_structure_hook_factory(is_model, lambda cls: _model_hook(conv, cls))
    return conv


def _has_origin(origin: Any, tp: Any) -> bool:
    return typing.get_origin(tp) is origin


def _checked_factory(factory: Callable[[Any, cattrs.Converter], Any], conv: cattrs.Converter,
                     tp: Any) -> Callable[[Any, Any], Any]:
    return _checked(tp, factory(tp, conv))


def _model_hook(conv: cattrs.Converter, cls: type) -> Callable[[Any, Any], Any]:
    """A model read from an object: camelCase names, ``null`` as absent where the field
    cannot be null."""
    renamed: dict[str, Any] = {a.name: override(rename=wire_name(a)) for a in fields(cls)}
    structure: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, conv, **renamed)
    not_null = {wire_name(a) for a in fields(cls) if not _nullable(a.type)}

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise WireTypeError(("object",), value)
        return structure({k: v for k, v in value.items()
                          if v is not None or k not in not_null}, cls)
    return hook


def structure(value: Any, cls: type[T]) -> T:
    """``value`` (decoded JSON) as the model ``cls``; raises what ``describe`` reads."""
    result: T = converter().structure(value, cls)
    return result


def _problems(exc: BaseException, path: str, cls: Any = None, tp: Any = None
              ) -> Iterator[tuple[str, BaseException, Any, Any]]:
    """Each error under ``exc`` with its path (JSON spellings), the class whose field it is
    and the field's type, in the order of the fields (as cattrs' ``transform_error``)."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for inner, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                yield from _problems(inner, f"{path}.{camel(note.name)}".lstrip("."), exc.cl,
                                     note.type)
            else:
                yield from _problems(inner, f"{path}[{note.index!r}]", None, note.type)
        for inner in without:
            yield path, inner, cls, None
    else:
        yield path, exc, cls, tp


def describe(method: str, exc: BaseException) -> str:
    """What is wrong with ``method``'s params, in one line: the first field read wrong,
    named as the JSON spells it (``webview.nonce``, ``args[1]``)."""
    for where, problem, cls, tp in _problems(exc, ""):
        path = "" if where == "params" else where.removeprefix("params.")  # a whole message
        if isinstance(problem, KeyError) and path:
            field = {f.name: f for f in fields(cls)}.get(problem.args[0]) \
                if is_model(cls) else None
            hint = field.metadata.get("hint") if field is not None else None
            return f"{method} needs '{path}'" + (f" ({hint})" if hint else "")
        named = f"'{path}'" if path else "params"
        if isinstance(problem, WireTypeError):
            return f"{method}: {named} {problem}"
        return f"{method}: {named}: {format_exception(problem, tp)}"
    return f"{method}: {exc}"


def check(method: str, params: Any, cls: type) -> str | None:
    """What is wrong with ``params`` read as ``cls`` (None: nothing); ``null`` params are
    no params."""
    try:
        structure({} if params is None else params, cls)
    except Exception as exc:  # noqa: BLE001 - every way params can be wrong is told
        return describe(method, exc)
    return None
