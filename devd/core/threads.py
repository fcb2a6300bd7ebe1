"""An executor with no fixed size: every running task has a thread of its own.

The daemon's spins and runs execute user code, which may loop forever or wait on
anything. A fixed-size pool would let a handful of such tasks (abandoned spins, say)
take every worker, and every later request would queue behind them for good. Here a
stuck task holds only its own thread; cancelling its work (its child is killed) ends it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

log = logging.getLogger("devd.threads")


IDLE_SECONDS = 60.0  # how long a finished task's thread waits for the next one


class ThreadPerTask(Executor):
    """``submit`` runs the call on a thread of its own; usable with ``run_in_executor``.

    A thread whose task ended waits a while for the next one (starting a thread costs a
    request a switch or two, a millisecond on a busy machine); a new thread is started only
    when none is free, so a stuck task still holds nothing but its own thread.
    ``on_idle`` runs (in the finishing thread) whenever the last running task ends.
    """

    def __init__(self, thread_name_prefix: str = "devd",
                 on_idle: Callable[[], None] | None = None) -> None:
        self._prefix = thread_name_prefix
        self._on_idle = on_idle  # called by the last running task's thread as it ends
        self._shutdown = False
        self._lock = threading.Lock()
        self._count = 0
        self._running = 0
        self._live: set[threading.Thread] = set()
        self._free: list[queue.SimpleQueue[_Job | None]] = []  # inboxes of waiting threads

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        job = (future, fn, args, kwargs)
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._running += 1
            if self._free:
                self._free.pop().put(job)
                return future
            self._count += 1
            thread = threading.Thread(target=self._serve, args=(job,), daemon=True,
                                      name=f"{self._prefix}-{self._count}")
            self._live.add(thread)
        thread.start()
        return future

    def _serve(self, job: _Job | None) -> None:
        inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        try:
            while job is not None:
                _run(job)
                job = None  # its arguments must not outlive the task
                with self._lock:
                    self._running -= 1
                    idle = self._running == 0
                    if not self._shutdown:
                        self._free.append(inbox)
                if idle and self._on_idle is not None:
                    try:
                        self._on_idle()
                    except Exception:  # housekeeping never fails a task
                        log.warning("the idle hook %r failed", self._on_idle, exc_info=True)
                job = self._next(inbox)
        finally:
            with self._lock:
                self._live.discard(threading.current_thread())

    def _next(self, inbox: queue.SimpleQueue[_Job | None]) -> _Job | None:
        try:
            return inbox.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with self._lock:
                if inbox in self._free:  # nobody took it meanwhile: this thread ends
                    self._free.remove(inbox)
                    return None
            return inbox.get()  # handed a task as the wait ended: it is there already

    def active(self) -> int:
        """Threads running a task now."""
        with self._lock:
            return self._running

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            live = list(self._live)
            free, self._free = self._free, []
        for inbox in free:
            inbox.put(None)
        if wait:
            for thread in live:
                thread.join()


_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def _run(job: _Job) -> None:
    future, fn, args, kwargs = job
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - handed to the future
        future.set_exception(exc)
    else:
        future.set_result(result)
