"""Which pages of a buffer a forked child wrote, read off the kernel's page map.

After a fork, parent and child share every private page copy-on-write; the child's first
write to a page gives it a private copy, which ``/proc/self/pagemap`` marks "exclusively
mapped" (bit 56, Linux 4.2+). So a buffer none of whose pages is exclusive in the child was
not written by the child: ~4 ms to know for 1 GB, where a crc32 of it takes ~250 ms.

This only holds for private memory. A buffer numpy allocated, a ``bytes`` or ``bytearray``
(what an unpickled array is a view of), is private anonymous memory: copied on write after
a fork, so the map tells reads from writes. A shared mapping (``np.memmap`` of a file, a
``mmap`` with MAP_SHARED, shared memory) is never copied: a child's write lands in the page
both processes map, which stays "not exclusive", so the map would vouch for a changed
buffer. ``private_buffer`` therefore only answers for the bases it knows to be private.

Whatever the map cannot vouch for (a page exclusive for another reason, a page swapped
out, a buffer it does not know to be private, no ``/proc``) is left to a checksum.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


_supported: dict[int, bool] = {}  # pid -> whether this kernel reports bit 56


def page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def _read_flags(fd: int, address: int, nbytes: int) -> bytes:
    """The flag byte (the most significant) of the page map's 64-bit entry of each page of
    the range, from the page map open as ``fd``: bit 7 is "present" (63), bit 0
    "exclusively mapped" (56). Read straight into one buffer (in a fresh child every byte
    allocated costs a page fault) and sliced in C: the flags of 512 pages cost
    microseconds, where numpy's first calls in a fresh child cost a tenth of a
    millisecond or more."""
    page = page_size()
    first = address // page
    count = (address + nbytes - 1) // page - first + 1
    data = bytearray(count * 8)
    with memoryview(data) as view:
        got = 0
        while got < len(data):
            n = os.preadv(fd, [view[got:]], first * 8 + got)
            if not n:
                raise OSError("short read of /proc/self/pagemap")
            got += n
    return bytes(data[7::8] if sys.byteorder == "little" else data[0::8])


_PRESENT = 0x80  # in the flag byte: bit 63 of the entry
_EXCLUSIVE = 0x01  # bit 56
_HAS = {bit: bytes.maketrans(bytes(range(256)), bytes(int(bool(b & bit)) for b in range(256)))
        for bit in (_PRESENT, _EXCLUSIVE)}  # flag byte -> 1 if it has the bit, else 0


def _pages_with(flags: bytes, bit: int) -> list[int]:
    marked = flags.translate(_HAS[bit])
    found, at = [], marked.find(1)
    while at >= 0:
        found.append(at)
        at = marked.find(1, at + 1)
    return found


def _all_with(flags: bytes, bit: int) -> bool:
    return 0 not in flags.translate(_HAS[bit])


def _kernel_reports_exclusive() -> bool:
    """A page this process just wrote must read as exclusive; a kernel older than 4.2
    reports 0 for every page, which would pass every buffer as untouched."""
    pid = os.getpid()
    if pid not in _supported:
        probe = bytearray(b"\1" * (page_size() * 2))  # every byte written now
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
        try:
            flags = _read_flags(fd, _bytes_address(probe), len(probe))
        finally:
            os.close(fd)
        _supported[pid] = _all_with(flags, _EXCLUSIVE)
    return _supported[pid]


def _bytes_address(value: bytes | bytearray) -> int:
    import ctypes

    if isinstance(value, bytearray):
        return ctypes.addressof(ctypes.c_char.from_buffer(value))
    return ctypes.cast(ctypes.c_char_p(value), ctypes.c_void_p).value or 0  # no copy


def private_buffer(value: Any) -> tuple[int, int] | None:
    """(address, length) of a C-contiguous array's or a bytes object's memory when it is
    private anonymous memory (numpy's own, or a ``bytes``/``bytearray``, also seen through
    views and memoryviews); None for anything else, a shared mapping above all."""
    if isinstance(value, bytes | bytearray):
        return (_bytes_address(value), len(value)) if value else None
    np = sys.modules.get("numpy")
    if np is None or not isinstance(value, np.ndarray) or value.nbytes == 0 \
            or not value.flags.c_contiguous:
        return None
    base: Any = value
    while True:
        if isinstance(base, np.ndarray):
            if base.base is None:
                if not base.flags.owndata:
                    return None
                break
            base = base.base
        elif isinstance(base, memoryview):
            base = base.obj
        elif isinstance(base, bytes | bytearray):
            break
        else:  # an mmap, a memmap's file, a foreign buffer: not known to be private
            return None
    return value.__array_interface__["data"][0], value.nbytes


def written_pages(address: int, nbytes: int) -> list[int] | None:
    """Indices (from the page holding ``address``) of the pages of the range this process
    wrote since it was forked; None when the map cannot tell (no page map, an old kernel,
    a page swapped out or never touched)."""
    if nbytes <= 0:
        return None
    page = page_size()
    first = address // page
    try:
        if not _kernel_reports_exclusive():
            return None
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)  # one open for all its reads
        try:
            written: list[int] = []
            for start, end in _entry_by_entry(address, nbytes, fd):
                flags = _read_flags(fd, start, end - start)
                if not _all_with(flags, _PRESENT):
                    return None  # swapped out (or never touched): nothing known of writes
                offset = start // page - first
                written.extend(offset + i for i in _pages_with(flags, _EXCLUSIVE))
        finally:
            os.close(fd)
    except (OSError, ValueError, AttributeError):
        return None
    return written


def _entry_by_entry(address: int, nbytes: int, fd: int | None = None
                    ) -> list[tuple[int, int]]:
    """The stretches of the range whose page-map entries must be read one by one: all of
    it, but for what the child still maps by a shared huge page (devd/common/hugemap.py)."""
    from .hugemap import HUGE, cow_splits_huge, huge_stretches

    end = address + nbytes
    huge = huge_stretches(address, nbytes, fd) if nbytes >= HUGE and cow_splits_huge() \
        else None
    if not huge:
        return [(address, end)]
    rest, at = [], address
    for start, stop in huge:
        if start > at:
            rest.append((at, start))
        at = max(at, stop)
    if at < end:
        rest.append((at, end))
    return rest


def untouched_since_fork(value: Any) -> bool | None:
    """True when ``value`` (an array or bytes in private memory) has no page this process
    wrote since it was forked; None when that cannot be told this way."""
    where = private_buffer(value)
    if where is None:
        return None
    written = written_pages(*where)
    if written is None or written:
        return None
    return True


def share_pages() -> bool:
    """Fork a process that only waits (until this one exits), so that from now on the
    page map tells this process's writes: for a child that loaded its parents itself
    (the spawn path), whose pages no fork has shared yet. False where it cannot."""
    if not hasattr(os, "fork") or not os.path.exists("/proc/self/pagemap"):
        return False
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return False
    if pid == 0:  # pragma: no cover - the holder: waits for EOF, i.e. for its parent's exit
        try:  # holding no pipe of its parent's (their readers wait for the ends to close)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.closerange(3, read_end)
            os.closerange(read_end + 1, max(read_end + 2, os.sysconf("SC_OPEN_MAX")))
            os.read(read_end, 1)
        finally:
            os._exit(0)
    os.close(read_end)
    os.set_inheritable(write_end, False)  # the step's subprocesses must not keep it alive
    return True
