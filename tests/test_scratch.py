"""A spin's scratch folder (its throwaway task) goes when its child is reaped, however the
child ended; folders of children nobody reaped are swept (devd/common/scratch.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from devd import Session
from devd.common import scratch

FLOW = '''
from metaflow import FlowSpec, current, step


class ScratchFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.write)

    @step
    def write(self):
        self.where = current.task.pathspec  # read back: the task's files are written
        self.y = self.x + 1
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ScratchFlow()
'''


def _folders() -> set[str]:
    root = scratch.root()
    assert root is not None
    return set(os.listdir(root))


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.02)


def test_no_scratch_folder_outlives_its_child(in_project: Path) -> None:
    from tests.conftest import run_flow

    (in_project / "scratch_flow.py").write_text(FLOW)
    run_flow(in_project, "scratch_flow.py")
    with Session("scratch_flow.py") as s:
        first = s.spin("write")
        assert first.ok, first.error
        _until(lambda: s.prepared.current is not None, "no child prepared")
        used = str(s.prepared.current.child.pid)
        # a prepared child sets its task up ahead: its folder exists before the spin
        _until(lambda: used in _folders(), "the prepared child made no scratch folder")
        second = s.spin("write")
        assert second.ok and second.artifacts["y"] == 2 and "child.idle" in second.timings
        _until(lambda: used not in _folders(), "the spin's folder stayed after its child")
        _until(lambda: s.prepared.current is not None, "no child prepared")
        unused = str(s.prepared.current.child.pid)
        _until(lambda: unused in _folders(), "the prepared child made no scratch folder")
    assert unused not in _folders()  # discarded at close, never used: its folder went too


def test_folders_of_children_nobody_reaped_are_swept() -> None:
    root = scratch.root()
    assert root is not None
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live = Path(root, str(dead.pid)), Path(root, str(os.getpid()))
    (stale / "task").mkdir(parents=True)
    live.mkdir(exist_ok=True)
    try:  # a new warm process sweeps when it first reaps a child
        subprocess.run([sys.executable, "-c",
                        "from devd.common import scratch; scratch.remove(0)"], check=True)
        assert not stale.exists()
        assert live.exists()  # a live process's folder is never swept
    finally:
        live.rmdir()
