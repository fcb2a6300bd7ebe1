"""JSON for the CLI's side of the daemon protocol, without importing ``json``.

``import json`` pulls in ``re`` and ``enum``: about 7 ms, a quarter of what a whole
``devd spin`` against a warm daemon may take. The C accelerator behind ``json`` (``_json``)
encodes and decodes on its own; this module drives it exactly as ``json.dumps`` and
``json.loads`` do (same output: ASCII, ``", "`` and ``": "`` separators), and falls back to
``json`` itself where ``_json`` is missing or differs.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar


class _DecodeContext:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # 'NaN', 'Infinity', '-Infinity'
    memo: ClassVar[dict[str, str]] = {}


def _c_codec() -> tuple[Callable[[str], Any], Callable[[Any, Any], str]] | None:
    try:
        import _json

        # typeshed wants the scanner's own type as context; any JSONDecoder-like object does.
        scanner = _json.make_scanner(_DecodeContext())  # type: ignore[arg-type]

        def loads(text: str) -> Any:
            try:
                value, end = scanner(text, 0)
            except StopIteration:
                value, end = None, -1
            if end != len(text):  # not one plain JSON document: let json say what is wrong
                import json

                return json.loads(text)
            return value

        def dumps(value: Any, default: Any = None) -> str:
            def refuse(obj: Any) -> Any:
                raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

            encode = _json.make_encoder(
                {}, default or refuse, _json.encode_basestring_ascii, None, ": ", ", ",
                False, False, True,
            )
            return "".join(encode(value, 0))

        if loads('{"a": [1, 2.5, "\\u00e9", true, null]}') != {"a": [1, 2.5, "é", True, None]}:
            return None
        if dumps({"a": [1, 2.5, "é", True, None]}) != '{"a": [1, 2.5, "\\u00e9", true, null]}':
            return None
        return loads, dumps
    except Exception:  # noqa: BLE001 - another Python's _json: use json itself
        return None


_CODEC = _c_codec()


def loads(text: str | bytes) -> Any:
    """``json.loads``."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    if _CODEC is None:
        import json

        return json.loads(text)
    return _CODEC[0](text)


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``json.dumps(value, default=default)``."""
    if _CODEC is None:
        import json

        return json.dumps(value, default=default)
    return _CODEC[1](value, default)
