"""The daemon's memory stays flat under repeated spins: the mechanisms, not RSS numbers.

RSS over thousands of spins is measured by bench/soak_bench.py; here each cause found
there is checked directly, so a regression fails fast and deterministically.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest

from devd.cli.client import DaemonClient
from devd.cli.daemons import start_background, stop
from devd.common.forking import fork_available, run_in_child
from devd.common.project import daemon_paths
from devd.core import memory
from tests.conftest import FLOWS, daemon_environment, run_flow


class _Node:
    """A reference cycle: only the garbage collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _one() -> int:
    return 1


@pytest.mark.skipif(not fork_available(), reason="needs os.fork")
def test_fork_keeps_the_parents_young_garbage_young() -> None:
    """Forking a child must not move the parent's young objects into the oldest
    generation: there, garbage waits for a full collection, which the daemon's heap makes
    rare, and every spin (a fork) piled more of it up (issue 9 item 9)."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()  # no automatic collection: only the explicit young one below
    try:
        node = _Node()
        alive = weakref.ref(node)
        del node
        outcome = run_in_child(_one)
        assert outcome.crashed is None and outcome.value == 1, outcome
        assert gc.isenabled() is False  # the fork restores the caller's gc state
        gc.collect(1)  # the two young generations only
        assert alive() is None, "the fork moved young garbage to the oldest generation"
    finally:
        if was:
            gc.enable()
    assert gc.isenabled() is was


@pytest.mark.skipif(memory.malloc_arenas() is None, reason="glibc's malloc only (Linux)")
def test_the_daemon_caps_its_malloc_arenas_under_concurrent_spins(tmp_path: Path) -> None:
    """Each request has a thread of its own, and glibc gave each concurrent thread a malloc
    arena of its own (up to 8 per core), whose freed memory stayed there: the daemon grew
    by tens of KB per spin. Its arenas are capped (and trimmed when idle); devd/status
    reports them, counted by glibc's malloc_info."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(FLOWS / "linear_flow.py", root / "linear_flow.py")
    flow_uri = (root / "linear_flow.py").as_uri()
    with daemon_environment("dmem"):
        run_flow(root, "linear_flow.py")
        start_background(str(root))
        paths = daemon_paths(str(root))
        failures: list[object] = []

        def spins(step: str) -> None:  # a new connection each, as `devd spin` does
            for _ in range(4):
                with DaemonClient(paths, timeout=120) as client:
                    result = client.request("devd/spin", {"uri": flow_uri, "step": step})
                if not result.get("ok"):
                    failures.append(result)

        try:
            threads = [threading.Thread(target=spins, args=(step,))
                       for step in ("start", "double", "end")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
            with DaemonClient(paths, timeout=60) as client:
                status = client.request("devd/status")
            shown = subprocess.run([sys.executable, "-m", "devd.cli", "status"], cwd=root,
                                   capture_output=True, text=True, timeout=120).stdout
        finally:
            stop(str(root))
    assert not failures, failures[0]
    mem = status["memory"]
    assert mem["tuned"] is True
    assert 1 <= mem["mallocArenas"] <= memory.ARENAS, mem
    assert mem["rssBytes"] > 0
    assert f"resident, {mem['mallocArenas']} malloc arena(s)" in shown, shown


def test_the_pool_calls_on_idle_once_its_last_task_ends() -> None:
    """The daemon trims the heap (memory.release) when its last request ends: not after
    every task while others still run, and whether the task failed or not."""
    from devd.core.threads import ThreadPerTask

    calls: list[int] = []
    pool = ThreadPerTask("t", on_idle=lambda: calls.append(pool.active()))
    gates = [threading.Event() for _ in range(3)]

    def wait(gate: threading.Event, fail: bool) -> None:
        gate.wait(30)
        if fail:
            raise ValueError("a failed task ends too")

    futures = [pool.submit(wait, gate, i == 1) for i, gate in enumerate(gates)]
    for i, gate in enumerate(gates[:2]):
        gate.set()
        futures[i].exception(30)
    assert calls == [], "on_idle ran while a task was still running"
    gates[2].set()
    futures[2].result(30)
    deadline = time.monotonic() + 30
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [0]
    pool.shutdown()


_BIG_FLOW = '''
from metaflow import FlowSpec, step


class BigFlow(FlowSpec):
    @step
    def start(self):
        import numpy as np
        self.big = np.arange(2_000_000, dtype="float64")  # 16 MB: streamed and rehomed
        self.next(self.train)

    @step
    def train(self):
        self.total = float(self.big[:1000].sum())
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BigFlow()
'''


@pytest.mark.skipif(not fork_available(), reason="needs os.fork")
def test_a_closed_session_lets_its_warm_parents_go(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Session.close() frees the parents it held: no thread that forked or prepared its
    children keeps their arguments (the warm values) alive while it waits for more work."""
    from devd.core.session import Session

    (tmp_path / "big_flow.py").write_text(_BIG_FLOW)
    monkeypatch.chdir(tmp_path)
    run_flow(tmp_path, "big_flow.py")
    session = Session("big_flow.py")
    assert session.spin("train").ok
    session.wait_warm()
    for _ in range(2):  # the second spin runs in a prepared child, and prepares the next
        deadline = time.monotonic() + 30
        while session.prepared.current is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session.spin("train").ok
    warm = session.store.get_many(session.plan("train").parents)
    big = weakref.ref(warm[0].values["big"])
    del warm
    session.close()
    del session
    gc.collect()
    assert big() is None, [type(r).__name__ for r in gc.get_referrers(big())]
