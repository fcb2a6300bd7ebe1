"""The daemon's executor: a thread per running task, reused once its task ends
(devd/core/threads.py)."""

from __future__ import annotations

import threading

from devd.core.threads import ThreadPerTask


def _name() -> str:
    return threading.current_thread().name


def test_a_stuck_task_never_holds_up_the_next() -> None:
    pool = ThreadPerTask("t")
    stuck = threading.Event()
    first = pool.submit(stuck.wait, 30)
    try:
        assert pool.submit(_name).result(10)  # ran while the first still waits
        assert pool.active() == 1
    finally:
        stuck.set()
        first.result(10)
        pool.shutdown()


def test_a_finished_tasks_thread_runs_the_next_task() -> None:
    pool = ThreadPerTask("t")
    try:
        first = pool.submit(_name).result(10)
        for _ in range(50):  # the thread puts itself back just after the result
            if pool._free:
                break
            threading.Event().wait(0.01)
        assert pool.submit(_name).result(10) == first
        assert pool.active() == 0
    finally:
        pool.shutdown()


def test_shutdown_ends_the_waiting_threads() -> None:
    pool = ThreadPerTask("t")
    pool.submit(_name).result(10)
    pool.shutdown()
    assert not pool._live
