"""Short, human descriptions of artifact values: type, shape or length, a clipped repr."""

from __future__ import annotations

import reprlib

from .report import ArtifactRow

TYPE_CHECKING = False  # no typing import: the CLI prints results with human_bytes
if TYPE_CHECKING:
    from typing import Any

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = 6
_repr.maxdict = 6
_repr.maxtuple = 6
_repr.maxset = 6


def type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    if module in ("builtins", "__main__"):
        return kind.__qualname__
    return f"{module.split('.')[0]}.{kind.__qualname__}"


def short_repr(value: Any, limit: int = 80) -> str:
    try:
        text = _repr.repr(value)
    except Exception as exc:  # noqa: BLE001 - a user __repr__ that raises
        text = f"<repr failed: {type(exc).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_long_repr = reprlib.Repr()
_long_repr.maxstring = 1000
_long_repr.maxother = 4000  # numpy and pandas shorten their own reprs; others are clipped
_long_repr.maxlist = _long_repr.maxtuple = _long_repr.maxset = _long_repr.maxdeque = 50
_long_repr.maxdict = 30
_long_repr.maxlevel = 4


def bounded_repr(value: Any, limit: int = 2000) -> str:
    """A repr of one value that fits in a message: containers cut, long text clipped."""
    try:
        text = _long_repr.repr(value)
    except Exception as exc:  # noqa: BLE001 - a user __repr__ that raises
        text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def size_bytes(value: Any) -> int | None:
    """Bytes held by common large values (arrays, frames, buffers); None when unknown."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    memory_usage = getattr(value, "memory_usage", None)
    if callable(memory_usage) and hasattr(value, "columns"):
        try:
            return int(memory_usage(deep=True).sum())
        except Exception:  # noqa: BLE001 - a dataframe-like whose memory_usage fails: size unknown
            return None
    if isinstance(value, bytes | bytearray):
        return len(value)
    return None


def summarize(value: Any) -> str:
    """'shape (3, 4) float64', 'len 10', 'RGB image 320x200', or a clipped repr for scalars."""
    size = getattr(value, "size", None)
    if type(value).__module__.startswith("PIL.") and isinstance(size, tuple) and len(size) == 2:
        return f"{getattr(value, 'mode', '')} image {size[0]}x{size[1]}".lstrip()
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        dtype = getattr(value, "dtype", None)
        text = f"shape {shape}"
        if dtype is not None and not hasattr(value, "columns"):
            text += f" {dtype}"
        return text
    if isinstance(value, str | bytes | bytearray):
        return f"len {len(value)}: {short_repr(value, 60)}"
    if isinstance(value, list | tuple | dict | set | frozenset):
        return f"len {len(value)}: {short_repr(value, 60)}"
    return short_repr(value)


def _number(x: Any) -> str:
    return f"{float(x):.6g}"


def diff_summary(value: Any) -> str:
    """A value as a diff shows it, one side of ``before → after``: a scalar's short repr;
    a big value by shape, dtype and (numeric arrays) mean, min and max; a collection by
    its length and start."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        text = summarize(value)
        dtype = getattr(value, "dtype", None)
        kind = getattr(dtype, "kind", "")
        size = getattr(value, "size", 0)
        if kind in ("i", "u", "f") and 0 < size <= 50_000_000 and not hasattr(value, "columns"):
            try:
                text += (f" · mean {_number(value.mean())} · min {_number(value.min())}"
                         f" · max {_number(value.max())}")
            except Exception:  # noqa: BLE001 - a user's array type: shape and dtype will do
                pass
        return text
    if isinstance(value, float):
        return _number(value)
    return summarize(value)


def describe(name: str, value: Any) -> ArtifactRow:
    """The row the CLI table, the JSON output and the daemon's result share."""
    return ArtifactRow(name, type_name(value), summarize(value), size_bytes(value))


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
