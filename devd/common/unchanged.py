"""Whether a step changed a big parent value it read: the page map first, checksums after.

Reading ``self.x`` caches the value on the flow, so Metaflow counts it as set by the step;
if it is the parent's own object and unchanged, the child passes the parent's value down
instead of pickling it back (the spin's whole cost for a big parent). "Unchanged" has to
be proved, cheaply:

- when a parent value is loaded, ``fingerprint`` records a crc32 per 256 KB chunk of each
  big buffer in it (the value itself if it is an array or bytes; the arrays inside it if
  it is a container, a DataFrame or any object pickled around big arrays, together with a
  crc32 of the rest of its pickle, its "skeleton");
- after the step, ``proof`` reads which pages of each buffer the child wrote off the
  kernel's page map (devd/common/pagecheck.py): only the chunks holding such pages are
  checksummed again (a refcount written beside a buffer costs one chunk, not the buffer);
  where the map cannot vouch (a shared mapping, no page map, a value loaded in this very
  process), every chunk is.
"""

from __future__ import annotations

import pickle
import sys
import zlib
from dataclasses import dataclass
from typing import Any

from .pagecheck import page_size, private_buffer, written_pages

BIG_BYTES = 1 << 20  # smaller values cost less to copy back than to prove unchanged
CHUNK_BYTES = 256 << 10  # what one written page costs to check again (~60 us)
SKELETON_LIMIT = 8 << 20  # a value that is mostly not big buffers is left to the copy
_PAGE_MAP = "page map"
_CHECKSUM = "crc32"


@dataclass(frozen=True)
class Leaf:
    """One big buffer as loaded: where it lay, how it was viewed, its chunks' crc32s."""

    address: int
    nbytes: int
    view: tuple[Any, ...]  # (type, dtype, shape, strides): the same buffer seen the same way
    chunks: tuple[int, ...]
    # an array whose memory is private (pagecheck.private_buffer), known when it was loaded:
    # the proof need not walk its bases again, which would write the refcount of the
    # ``bytes`` it views (its first page: one copied page, one chunk to checksum again)
    private: bool = False


@dataclass(frozen=True)
class Fingerprint:
    """What a big parent value was when loaded: its buffers, and for anything but a bare
    buffer the crc32 of its pickle with those buffers left out."""

    leaves: tuple[Leaf, ...]
    skeleton: int | None = None  # None: the value is the one buffer


def _big_buffer(value: Any) -> bool:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return (not value.dtype.hasobject and value.flags.c_contiguous
                and value.nbytes >= BIG_BYTES)
    return isinstance(value, bytes | bytearray) and len(value) >= BIG_BYTES


def _memory(value: Any) -> memoryview:
    return memoryview(value).cast("B")


def _view(value: Any) -> tuple[Any, ...]:
    if isinstance(value, bytes | bytearray):
        return (type(value), None, (len(value),), None)
    return (type(value), value.dtype.str, value.shape, value.strides)


def _address(value: Any) -> tuple[int, bool]:
    """Where the buffer lies, and whether it is private memory (else -1 for a buffer the
    page map never vouches for, a ``bytes`` held elsewhere)."""
    where = private_buffer(value)
    if where is not None:
        return where[0], True
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return int(value.__array_interface__["data"][0]), False
    return -1, False


def _nbytes(value: Any) -> int:
    return int(value.nbytes) if hasattr(value, "nbytes") else len(value)


def _chunk_crcs(value: Any) -> tuple[int, ...]:
    data = _memory(value)
    return tuple(zlib.crc32(data[i:i + CHUNK_BYTES]) for i in range(0, len(data), CHUNK_BYTES))


def _leaf(value: Any) -> Leaf:
    address, private = _address(value)
    np = sys.modules.get("numpy")
    return Leaf(address, _memory(value).nbytes, _view(value), _chunk_crcs(value),
                private and np is not None and isinstance(value, np.ndarray))


def _where(value: Any, leaf: Leaf) -> tuple[int, int] | None:
    """The buffer's (address, length) if it is the private memory ``leaf`` recorded."""
    if leaf.private:  # the same array object: its bases cannot have changed since
        address = int(value.__array_interface__["data"][0])
        return (address, leaf.nbytes) if address == leaf.address else None
    where = private_buffer(value)
    return where if where is not None and where[0] == leaf.address else None


class _TooBig(Exception):
    pass


class _Crc:
    """A pickle's sink that keeps only its crc32 (and gives up past SKELETON_LIMIT)."""

    def __init__(self) -> None:
        self.crc = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > SKELETON_LIMIT:
            raise _TooBig
        self.crc = zlib.crc32(data, self.crc)
        return len(data)


class _SkeletonPickler(pickle.Pickler):
    """Pickles a value with each big buffer replaced by its position among them."""

    def __init__(self, sink: _Crc) -> None:
        super().__init__(sink, protocol=4)
        self.leaves: list[Any] = []

    def persistent_id(self, obj: Any) -> Any:
        if _big_buffer(obj):
            self.leaves.append(obj)
            return len(self.leaves) - 1
        return None


def _skeleton(value: Any) -> tuple[int, list[Any]] | None:
    sink = _Crc()
    pickler = _SkeletonPickler(sink)
    try:
        pickler.dump(value)
    except _TooBig:
        return None
    except Exception:  # noqa: BLE001 - any __reduce__ may raise: no proof, the copy decides
        return None
    return sink.crc, pickler.leaves


def fingerprint(value: Any) -> Fingerprint | None:
    """The value's big buffers as loaded; None when it holds none (nothing to gain)."""
    if _big_buffer(value):
        return Fingerprint((_leaf(value),))
    if isinstance(value, str | int | float | bool | type(None)):
        return None
    found = _skeleton(value)
    if found is None or not found[1]:
        return None
    crc, leaves = found
    return Fingerprint(tuple(_leaf(leaf) for leaf in leaves), crc)


def fingerprints(values: dict[str, Any]) -> dict[str, Fingerprint]:
    found = {}
    for name, value in values.items():
        mark = fingerprint(value)
        if mark is not None:
            found[name] = mark
    return found


def _leaf_proof(value: Any, leaf: Leaf) -> str | None:
    """How ``value`` was shown to be the buffer ``leaf`` recorded, unchanged; None if not."""
    if not _big_buffer(value) or _view(value) != leaf.view or _nbytes(value) != leaf.nbytes:
        return None
    where = _where(value, leaf)
    written = written_pages(*where) if where is not None else None
    if written is None:  # the map cannot vouch: every chunk
        chunks: Any = range(len(leaf.chunks))
        how = _CHECKSUM
    else:  # only the chunks holding a page this process wrote
        page = page_size()
        start = (leaf.address // page) * page - leaf.address  # the first page's offset
        chunks = set()
        for p in written:  # a page may straddle two chunks: both are checked
            first = max(0, start + int(p) * page)
            last = min(leaf.nbytes, start + (int(p) + 1) * page) - 1
            chunks.update(range(first // CHUNK_BYTES, last // CHUNK_BYTES + 1))
        how = _PAGE_MAP if len(chunks) < len(leaf.chunks) else _CHECKSUM
    if chunks:
        data = _memory(value)
        for i in sorted(chunks):
            if zlib.crc32(data[i * CHUNK_BYTES:(i + 1) * CHUNK_BYTES]) != leaf.chunks[i]:
                return None
    return how


def proof(value: Any, mark: Fingerprint) -> str | None:
    """How ``value``, a parent's value after the step ran, was shown to be as ``mark``
    recorded it ('page map', or 'crc32' where the map could not vouch); None if it changed
    or cannot be shown unchanged."""
    if mark.skeleton is None:
        return _leaf_proof(value, mark.leaves[0])
    found = _skeleton(value)
    if found is None or found[0] != mark.skeleton or len(found[1]) != len(mark.leaves):
        return None
    hows = [_leaf_proof(v, leaf) for v, leaf in zip(found[1], mark.leaves, strict=True)]
    if None in hows:
        return None
    return _CHECKSUM if _CHECKSUM in hows else _PAGE_MAP
