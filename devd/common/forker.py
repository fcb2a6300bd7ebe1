"""Forking the warm process: one fork at a time, on one long-lived thread, the child in its
own process group and killed with the warm process (Linux's parent-death signal)."""

from __future__ import annotations

import functools
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import queue

    # What the fork thread takes: the child's function, a box for (pid, error), done.
    _ForkJob = tuple[Callable[[], None], list[Any], threading.Event]


# One fork at a time: gc.disable()/enable() around a fork are process-wide.
_FORK_LOCK = threading.Lock()

_PR_SET_PDEATHSIG = 1


@functools.cache
def libc_prctl() -> Any:
    """libc's ``prctl`` (Linux), or None: children ask it to die with the warm process."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    return prctl


class _Forker:
    """Forks on one long-lived thread.

    Linux's parent-death signal (``PR_SET_PDEATHSIG``) fires when the *thread* that
    forked a child ends, not only the process: a child forked on a short-lived request
    thread would be killed when that thread finished. All forks go through this thread,
    which lives as long as the process, so a child dies exactly when the warm process
    does (SIGKILL included).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_ForkJob] | None = None
        self._owner_pid = 0

    def fork(self, in_child: Callable[[], None]) -> int:
        import queue

        with self._lock:
            jobs = self._jobs
            if jobs is None or self._owner_pid != os.getpid():  # first use, or in a fork
                jobs = self._jobs = queue.SimpleQueue()
                self._owner_pid = os.getpid()
                threading.Thread(target=self._serve, args=(jobs,), name="devd-fork",
                                 daemon=True).start()
        done = threading.Event()
        box: list[Any] = [0, None]
        jobs.put((in_child, box, done))
        done.wait()
        if box[1] is not None:
            raise box[1]
        return int(box[0])

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[_ForkJob]) -> None:
        while True:
            in_child, box, done = jobs.get()
            try:
                box[0] = fork_now(in_child)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box[1] = exc
            done.set()
            # Waiting for the next job must not hold this one: its closure holds the
            # child's arguments (a Session's warm parents), which would outlive the Session.
            del in_child, box, done


def fork_now(in_child: Callable[[], None]) -> int:
    parent = os.getpid()
    with _FORK_LOCK:
        # Objects that exist now are never scanned by the child's garbage collector: a
        # collection there would write to every object and copy every page. The child
        # freezes them (O(1): the generation lists are spliced) before its collector can
        # run; the parent's generations stay as they were. (A freeze/unfreeze around the
        # fork in the parent moved every young object, garbage too, into the oldest
        # generation, which only a full collection scans: the daemon's garbage piled up
        # with every spin.)
        enabled = gc.isenabled()
        gc.disable()
        try:
            pid = os.fork()
            if pid == 0:
                gc.freeze()
        finally:
            if enabled:
                gc.enable()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            # Its own process group: whatever the step starts is killed with it.
            os.setpgid(0, 0)
            prctl = libc_prctl()
            if prctl is not None:
                prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
                if os.getppid() != parent:  # the warm process died before prctl
                    os._exit(1)
        except BaseException:  # noqa: BLE001 - in the forked child nothing may unwind into
            pass  # the parent's frames; without its own group or PDEATHSIG the step still runs
        in_child()
        os._exit(0)
    return pid


_FORKER = _Forker()


def fork(in_child: Callable[[], None]) -> int:
    """Fork a child that runs ``in_child``; its pid. On the fork thread where a parent-death
    signal can be asked for (it follows the thread that forked)."""
    return _FORKER.fork(in_child) if libc_prctl() is not None else fork_now(in_child)
