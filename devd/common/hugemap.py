"""Which stretches of a buffer a forked child still maps by the huge pages it shares with
the warm process: one ``PAGEMAP_SCAN`` call (Linux 6.7+) instead of a page-map entry per
4 KB page.

The warm process keeps big arrays on 2 MB huge pages (devd/common/streamload.py). Reading
their page map entry by entry (devd/common/pagecheck.py) costs a page walk per 2 MB and
8 bytes per 4 KB page: ~5 ms for 1 GB. ``PAGEMAP_SCAN`` lists the stretches still mapped
by a huge page (PMD) in one call: ~0.1 ms for 1 GB.

Why such a stretch was not written: a write to a huge page shared after a fork is a
copy-on-write fault, which Linux answers by splitting the mapping into small pages and
copying only the one written (``do_huge_pmd_wp_page`` falls back), so a written stretch is
no longer huge. That is a kernel behaviour, not a promise: every child checks it on a probe
of its own before trusting it (``cow_splits_huge``): a huge page the warm process made
(``arm``) and so shares with each child; the child writes a byte of it and must see its
mapping split. And khugepaged cannot make a written stretch huge again: it does not
collapse a range most of whose pages another process maps (``max_ptes_shared``, checked
below 512), and the warm process maps them all while a spin runs.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HUGE = 2 << 20
_PAGEMAP_SCAN = 0xC0606610  # _IOWR('f', 16, struct pm_scan_arg)
_IS_PRESENT = 1 << 3
_IS_HUGE = 1 << 6
_VEC = 32  # regions per call: a buffer a child wrote in many places takes a few calls

_probe: list[Any] = []  # [mmap, address, pid that made it]
_trusted: dict[int, bool] = {}  # pid -> whether the probe showed a write splitting


def _ctypes_types() -> tuple[Any, Any]:
    import ctypes

    class ScanArg(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint64) for name in (
            "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages",
            "category_inverted", "category_mask", "category_anyof_mask", "return_mask")]

    class Region(ctypes.Structure):
        _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64),
                    ("categories", ctypes.c_uint64)]

    return ScanArg, Region


_types: list[Any] = []


def huge_stretches(address: int, nbytes: int, pagemap: int | None = None
                   ) -> list[tuple[int, int]] | None:
    """(start, end) addresses of the parts of the range mapped by present huge pages; None
    when the kernel cannot say (no PAGEMAP_SCAN). ``pagemap``: the page map, open."""
    import ctypes
    import fcntl

    if not _types:
        _types.extend(_ctypes_types())
    scan_arg, region = _types
    page = os.sysconf("SC_PAGE_SIZE")
    start = address // page * page
    end = -(-(address + nbytes) // page) * page
    vec = (region * _VEC)()
    found: list[tuple[int, int]] = []
    fd = os.open("/proc/self/pagemap", os.O_RDONLY) if pagemap is None else pagemap
    try:
        while start < end:
            arg = scan_arg(size=ctypes.sizeof(scan_arg), start=start, end=end,
                           vec=ctypes.addressof(vec), vec_len=_VEC,
                           category_mask=_IS_PRESENT | _IS_HUGE,
                           return_mask=_IS_PRESENT | _IS_HUGE)
            count = fcntl.ioctl(fd, _PAGEMAP_SCAN, arg)
            found.extend((vec[i].start, vec[i].end) for i in range(count))
            if arg.walk_end <= start:
                return None
            start = arg.walk_end
    except OSError:  # ENOTTY/EINVAL: a kernel before 6.7
        return None
    finally:
        if pagemap is None:
            os.close(fd)
    return found


_collapse_works: list[bool] = []


def collapse_in_place(address: int, length: int) -> bool:
    """madvise(MADV_HUGEPAGE) then MADV_COLLAPSE over the 2 MB-aligned middle of a buffer
    (not tried again in this process once it failed)."""
    if _collapse_works and not _collapse_works[0]:
        return False
    start = (address + HUGE - 1) // HUGE * HUGE
    end = (address + length) // HUGE * HUGE
    if end <= start:
        return True  # nothing a huge page could hold
    ok = _collapse(start, end - start)
    if not _collapse_works:
        _collapse_works.append(ok)
    return ok


def _collapse(start: int, length: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.madvise(start, length, 14)  # MADV_HUGEPAGE: khugepaged may keep them so
        return bool(libc.madvise(start, length, 25) == 0)  # MADV_COLLAPSE
    except (OSError, AttributeError):
        return False


def arm() -> None:
    """Make, in the warm process, the huge page its children probe (once; 2 MB)."""
    if _probe or not sys.platform.startswith("linux"):
        return
    import mmap

    area = mmap.mmap(-1, 2 * HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    base = _address(area)
    aligned = -(-base // HUGE) * HUGE
    for offset in range(aligned - base, aligned - base + HUGE, os.sysconf("SC_PAGE_SIZE")):
        area[offset] = 1  # present, so that the collapse has pages to gather
    if not _collapse(aligned, HUGE):
        area.close()
        return
    _probe.extend([area, aligned, os.getpid()])


def _collapse_bound() -> bool:
    """khugepaged must refuse a range most of whose pages another process maps."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_shared") as fh:
            return int(fh.read()) < 512 - 1
    except (OSError, ValueError):
        return True  # no khugepaged knobs: nothing collapses behind our back


def cow_splits_huge() -> bool:
    """Whether, in this forked process, a write to a shared huge page splits its mapping
    (so a stretch still huge was not written); tested once per process on the probe."""
    pid = os.getpid()
    if pid in _trusted:
        return _trusted[pid]
    ok = False
    if _probe and _probe[2] != pid and _collapse_bound():
        area, aligned, _ = _probe
        before = huge_stretches(aligned, HUGE)
        if before == [(aligned, aligned + HUGE)]:
            area[aligned - _address(area)] = 2  # a write: copy-on-write of the shared page
            ok = huge_stretches(aligned, HUGE) == []
    _trusted[pid] = ok
    return ok


def _address(area: Any) -> int:
    import ctypes

    return ctypes.addressof(ctypes.c_char.from_buffer(area))
