"""An executor with no fixed size: every task gets a thread of its own.

The daemon's spins and runs execute user code, which may loop forever or wait on
anything. A fixed-size pool would let a handful of such tasks (abandoned spins, say)
take every worker, and every later request would queue behind them for good. Here a
stuck task holds only its own thread; cancelling its work (its child is killed) ends it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

log = logging.getLogger("devd.threads")


class ThreadPerTask(Executor):
    """``submit`` starts a daemon thread for the call; usable with ``run_in_executor``.

    ``on_idle`` runs (in the finishing thread) whenever the last running task ends.
    """

    def __init__(self, thread_name_prefix: str = "devd",
                 on_idle: Callable[[], None] | None = None) -> None:
        self._prefix = thread_name_prefix
        self._on_idle = on_idle  # called by the last running task's thread as it ends
        self._shutdown = False
        self._lock = threading.Lock()
        self._count = 0
        self._live: set[threading.Thread] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._count += 1
            name = f"{self._prefix}-{self._count}"

        def work() -> None:
            try:
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - handed to the future
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            finally:
                with self._lock:
                    self._live.discard(thread)
                    idle = not self._live
                if idle and self._on_idle is not None:
                    try:
                        self._on_idle()
                    except Exception:  # housekeeping never fails a task
                        log.warning("the idle hook %r failed", self._on_idle, exc_info=True)

        thread = threading.Thread(target=work, name=name, daemon=True)
        with self._lock:
            self._live.add(thread)
        thread.start()
        return future

    def active(self) -> int:
        """Threads running a task now."""
        with self._lock:
            return len(self._live)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            live = list(self._live)
        if wait:
            for thread in live:
                thread.join()
