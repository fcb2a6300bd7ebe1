"""The daemon's native heap: glibc's malloc arenas capped, free pages handed back.

Every request runs on a thread of its own (devd/core/threads.py), and glibc gives threads
their own malloc arenas, up to 8 per core. Memory freed in an arena stays in it, split
between the objects still alive there, and each new thread lands in whichever arena is
free: over thousands of spins the daemon's resident size crept up by tens of KB a spin
though its Python objects did not grow. Python allocates only while it holds the GIL, so
two arenas cost no lock contention; and when the daemon's last request ends,
``malloc_trim`` returns the free pages of every arena to the system.

Only glibc (Linux) has these calls; elsewhere every function here does nothing.
``DEVD_MALLOC_TUNING=0`` turns both off (to compare, bench/soak_bench.py).
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass
from typing import Literal

ARENAS = 2  # the cap: the main arena and one more
_M_ARENA_MAX = -8  # mallopt parameter, glibc's malloc.h

_libc: ctypes.CDLL | Literal[False] | None = None  # None: not looked for; False: not glibc


def _glibc() -> ctypes.CDLL | None:
    """glibc through ctypes, or None (another C library, another system)."""
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(None)
                lib.gnu_get_libc_version  # noqa: B018 - only glibc has it
                lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                lib.malloc_trim.argtypes = [ctypes.c_size_t]
                _libc = lib
            except (OSError, AttributeError):
                pass
    return _libc or None


def enabled() -> bool:
    return os.environ.get("DEVD_MALLOC_TUNING", "1").strip() != "0"


def tune() -> bool:
    """Cap the malloc arenas; call it before the process starts threads. True if done."""
    libc = _glibc()
    if libc is None or not enabled():
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, ARENAS))


def release() -> None:
    """Hand the free pages of every arena back to the system (~0.1 ms; the GIL is
    released meanwhile)."""
    libc = _glibc()
    if libc is not None and enabled():
        libc.malloc_trim(0)


def malloc_arenas() -> int | None:
    """How many malloc arenas this process has (glibc's ``malloc_info``), or None."""
    libc = _glibc()
    if libc is None:
        return None
    buf, size = ctypes.c_void_p(), ctypes.c_size_t()
    try:
        libc.open_memstream.restype = ctypes.c_void_p
        libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_void_p),
                                        ctypes.POINTER(ctypes.c_size_t)]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        libc.free.argtypes = [ctypes.c_void_p]
        stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
        if not stream:
            return None
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        text = ctypes.string_at(buf.value, size.value) if buf.value else b""
        libc.free(buf)
    except (OSError, AttributeError):
        return None
    return text.count(b"<heap nr=")


def rss_bytes() -> int | None:
    """This process's resident size now (Linux), or None."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class ProcessMemory:
    """What this process holds, as the system sees it (None: cannot tell here)."""

    rss_bytes: int | None
    malloc_arenas: int | None
    tuned: bool  # glibc's arenas capped and trimmed when idle (this module at work)


def stats() -> ProcessMemory:
    """For ``devd/status``: the daemon's resident size and malloc arenas."""
    return ProcessMemory(rss_bytes(), malloc_arenas(), enabled() and _glibc() is not None)
