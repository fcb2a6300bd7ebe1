"""Real Metaflow runs: options placed as Metaflow's own CLI defines them, progress read
from the run's task records."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devd.core import runner
from devd.core.engine import Engine

FLOWS = Path(__file__).parent / "flows"


def test_top_level_options_come_from_metaflows_own_cli() -> None:
    known = runner.top_level_options()
    # Options Metaflow added after devd kept a list of its own, and what flows add
    # (Configs; @project's flow decorator options), with their arity.
    assert known["--mode"] == 1
    assert known["--force-rebuild-environments"] == 0
    assert known["--local-config-file"] == 1
    assert known["--config-value"] == 2 and known["--config"] == 2
    assert known["--branch"] == 1 and known["--production"] == 0
    assert known["--quiet"] == known["--not-quiet"] == 0
    assert "--max-workers" not in known  # `run`'s own


def test_top_level_options_go_before_the_subcommand() -> None:
    command = runner.build_command(
        "flow.py", "run",
        ["--max-workers", "2", "--mode", "spin", "--with=retry", "--branch", "b",
         "--config", "cfg", "c.toml", "--production", "--tag", "t"], "/tmp/id")
    top = command[2:command.index("run")]
    assert top == ["--mode", "spin", "--with=retry", "--branch", "b", "--config", "cfg",
                   "c.toml", "--production"]
    assert command[command.index("run") + 1:] == ["--max-workers", "2", "--tag", "t",
                                                  "--run-id-file", "/tmp/id"]


@pytest.fixture
def run_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project of its own, this process's Metaflow root (as the daemon's is)."""
    from devd.core.metaflowenv import bind_metaflow_root

    for name in ("foreach_flow.py", "fail_flow.py"):
        shutil.copy(FLOWS / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    bind_metaflow_root()
    yield tmp_path
    bind_metaflow_root()


def test_run_progress_comes_from_the_task_records(run_project: Path) -> None:
    engine = Engine(str(run_project), budget_bytes=1 << 20)
    reports: list[tuple[int, int, str]] = []
    logs: list[str] = []
    try:
        outcome = engine.run(str(run_project / "foreach_flow.py"), "run", [],
                             on_log=lambda stream, text: logs.append(text),
                             on_progress=lambda done, total, step: reports.append(
                                 (done, total, step)))
        assert outcome.ok and outcome.run_id
        # every step once, in order, the foreach body once all six splits succeeded
        assert reports == [(1, 4, "start"), (2, 4, "body"), (3, 4, "join"), (4, 4, "end")]
        assert logs, "the run's output still streams"

        reports.clear()
        failed = engine.run(str(run_project / "fail_flow.py"), "run", [],
                            on_progress=lambda done, total, step: reports.append(
                                (done, total, step)))
        assert not failed.ok and failed.run_id
        assert reports == [(1, 3, "start")]  # train failed: not done, and end never ran
    finally:
        engine.close()


def test_progress_waits_for_a_foreach_to_go_past_its_splits() -> None:
    """Splits finished so far are not the step done while more are to start."""

    class FakeTask:
        def __init__(self, pathspec: str, finished: bool) -> None:
            self.pathspec = pathspec
            self.finished_at = 1.0 if finished else None
            self.successful = finished

    reports: list[str] = []
    progress = runner.TaskProgress(
        "F", {"start": ("body",), "body": ("join",), "join": ()},
        lambda done, total, step: reports.append(step))
    progress.update({"start": [FakeTask("F/1/start/1", True)],
                     "body": [FakeTask("F/1/body/2", True)]})
    assert reports == ["start"]  # body's first split succeeded, the join has not started
    progress.update({"start": [FakeTask("F/1/start/1", True)],
                     "body": [FakeTask("F/1/body/2", True), FakeTask("F/1/body/3", False)],
                     "join": []})
    assert reports == ["start"]  # the second split still runs
    progress.update({"start": [FakeTask("F/1/start/1", True)],
                     "body": [FakeTask("F/1/body/2", True), FakeTask("F/1/body/3", True)],
                     "join": [FakeTask("F/1/join/4", False)]})
    assert reports == ["start", "body"]
