"""Spins reproduce what Metaflow's own run does, for flows devd's other tests do not cover:
Configs read by any parser, IncludeFile, ``@catch``, ``current.task``, helper code
outside the flow's folder, a run still being written, default decospecs.

Every flow here is run for real with ``python flow.py run`` in a project of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from metaflow import Flow, Task, namespace

import devd
from devd import DevdError, Session
from tests.conftest import run_flow

CONFIG_FLOW = '''\
import os

from metaflow import Config, FlowSpec, config_expr, environment, step


def parse_pairs(text):
    """key=value lines: a parser of the flow's own."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def words(text):
    return tuple(text.split())


def numbers(text):
    return [int(part) for part in text.split(",")]


class ParsedConfigFlow(FlowSpec):
    cfg = Config("cfg", default="cfg.toml", parser="tomllib.loads")
    pairs = Config("pairs", default="pairs.txt", parser=parse_pairs)
    colors = Config("colors", default_value="red green", parser=words, plain=True)
    sizes = Config("sizes", default_value="1,2,3", parser=numbers, plain=True)
    note = Config("note", default_value="just text", plain=True)

    @step
    def start(self):
        self.lr = self.cfg.lr
        self.model_name = self.cfg.model.name
        self.pair_a = self.pairs["a"]
        self.first_color = self.colors[0]
        self.color_type = type(self.colors).__name__
        self.total = sum(self.sizes)
        self.note_upper = self.note.upper()
        self.next(self.train)

    @environment(vars={"MODEL": config_expr("cfg.model.name"),
                       "FIRST_COLOR": config_expr("colors[0]")})
    @step
    def train(self):
        self.env_model = os.environ.get("MODEL")
        self.env_color = os.environ.get("FIRST_COLOR")
        self.body_lr = self.cfg.lr
        self.body_colors = self.colors
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ParsedConfigFlow()
'''

ENV_CONFIG_FLOW = '''\
import json
import os

from metaflow import Config, FlowSpec, step

# The flow names its Config file itself, as a team's launcher script might.
os.environ.setdefault("METAFLOW_FLOW_CONFIG", json.dumps(
    {"settings": os.path.join(os.path.dirname(os.path.abspath(__file__)), "env.json")}))


class EnvConfigFlow(FlowSpec):
    settings = Config("settings", default="unused.json")

    @step
    def start(self):
        self.depth = self.settings.depth
        self.next(self.end)

    @step
    def end(self):
        self.seen = self.settings.name


if __name__ == "__main__":
    EnvConfigFlow()
'''

INCLUDE_FLOW = '''\
from metaflow import FlowSpec, IncludeFile, step


class IncludeFlow(FlowSpec):
    notes = IncludeFile("notes", default="notes.txt")
    blob = IncludeFile("blob", default="blob.bin", is_text=False)

    @step
    def start(self):
        self.lines = len(self.notes.splitlines())
        self.next(self.end)

    @step
    def end(self):
        self.size = len(self.blob)


if __name__ == "__main__":
    IncludeFlow()
'''

CATCH_FLOW = '''\
from metaflow import FlowSpec, catch, step


class CaughtFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.risky)

    @catch(var="failure")
    @step
    def risky(self):
        self.partial = "set before the error"
        if self.x:
            raise ValueError("risky failed")
        self.next(self.after)

    @step
    def after(self):
        self.caught = str(self.failure.exception)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CaughtFlow()
'''

CURRENT_FLOW = '''\
import time

from metaflow import FlowSpec, current, step


class CurrentFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.look)

    @step
    def look(self):
        task = current.task
        self.task_path = task.pathspec
        self.task_finished = task.finished
        self.run_path = current.run.pathspec
        self.next(self.slow)

    @step
    def slow(self):
        time.sleep(1.5)
        self.slept = True
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CurrentFlow()
'''

HOLD_FLOW = '''\
import os
import time

from metaflow import FlowSpec, current, step

HOLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hold")


def hold_here():
    """A run started with HOLD_STEP=<this step> waits here while the file "hold" exists."""
    if os.environ.get("HOLD_STEP") == current.step_name:
        until = time.monotonic() + 120
        while os.path.exists(HOLD) and time.monotonic() < until:
            time.sleep(0.05)


class HoldFlow(FlowSpec):
    @step
    def start(self):
        hold_here()
        self.items = [1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        hold_here()
        self.sq = self.input ** 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [i.sq for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HoldFlow()
'''

STALE_FLOW = '''\
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import helper_lib  # noqa: E402  (a folder beside the flow's, put on sys.path)
import stalepkg  # noqa: E402  (a package of the project, installed in editable mode)
from metaflow import FlowSpec, step  # noqa: E402

print("imported StaleFlow")


class StaleFlow(FlowSpec):
    @step
    def start(self):
        self.x = 10
        self.next(self.compute)

    @step
    def compute(self):
        self.y = self.x * helper_lib.FACTOR + stalepkg.OFFSET
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StaleFlow()
'''


def public_artifacts(task: Task) -> dict:
    return {a.id: a.data for a in task if not a.id.startswith("_")}


def devd_cli(cwd: Path, *args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def fidelity(tmp_path_factory: pytest.TempPathFactory):
    """A project holding this module's flows, each run once for real."""
    root = tmp_path_factory.mktemp("fidelity")
    files = {
        "config_flow.py": CONFIG_FLOW,
        "cfg.toml": 'lr = 0.1\n[model]\nname = "small"\n',
        "pairs.txt": "a=1\nb=2\n",
        "env_config_flow.py": ENV_CONFIG_FLOW,
        "env.json": '{"depth": 4, "name": "from-env"}',
        "include_flow.py": INCLUDE_FLOW,
        "notes.txt": "first line\nsecond line\n",
        "catch_flow.py": CATCH_FLOW,
        "current_flow.py": CURRENT_FLOW,
        "hold_flow.py": HOLD_FLOW,
    }
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4)
    previous = os.getcwd()
    os.chdir(root)
    for flow in ("config_flow.py", "env_config_flow.py", "include_flow.py", "catch_flow.py",
                 "current_flow.py", "hold_flow.py"):
        run_flow(root, flow)
    namespace("user:devd-test")
    yield root
    os.chdir(previous)


@pytest.fixture
def here(fidelity: Path) -> Path:
    os.chdir(fidelity)
    return fidelity


def client_here() -> None:
    """This process's Client reads this project (it may have read another one before)."""
    from devd.core.metaflowenv import bind_metaflow_root

    bind_metaflow_root()
    namespace("user:devd-test")


def every_task(flow_name: str) -> list[Task]:
    client_here()
    return [task for step in Flow(flow_name).latest_run for task in step]


# -- 1. Configs with any parser -------------------------------------------------------------

def test_every_task_with_configs_of_any_parser_is_reproduced(here: Path) -> None:
    tasks = every_task("ParsedConfigFlow")
    with Session("config_flow.py") as s:
        for task in tasks:
            result = s.spin(task.pathspec)
            assert result.ok, result.error and result.error.traceback
            assert result.artifacts == public_artifacts(task), task.pathspec
        train = s.spin("train")
    assert train.ok, train.error and train.error.traceback
    assert (train.artifacts["env_model"], train.artifacts["env_color"]) == ("small", "red")
    assert train.artifacts["body_colors"] == ("red", "green")  # the parser's tuple, kept
    start = devd.spin("config_flow.py", "start")
    assert (start.artifacts["lr"], start.artifacts["pair_a"], start.artifacts["total"],
            start.artifacts["color_type"], start.artifacts["note_upper"]) == \
        (0.1, "1", 6, "tuple", "JUST TEXT")


def test_config_values_given_as_objects_are_taken_as_they_are(here: Path) -> None:
    given = {"cfg": {"lr": 0.5, "model": {"name": "big"}}, "colors": ("blue",),
             "sizes": [10, 20], "pairs": {"a": "7"}, "note": "other"}
    train = devd.spin("config_flow.py", "train", config_value=given)
    assert train.ok, train.error and train.error.traceback
    assert (train.artifacts["env_model"], train.artifacts["env_color"]) == ("big", "blue")
    assert train.artifacts["body_lr"] == 0.5 and train.artifacts["body_colors"] == ("blue",)
    start = devd.spin("config_flow.py", "start", config_value=given)
    assert (start.artifacts["pair_a"], start.artifacts["total"],
            start.artifacts["note_upper"]) == ("7", 30, "OTHER")


def test_config_texts_go_through_the_flows_parsers(here: Path) -> None:
    texts = {"cfg": 'lr = 0.7\n[model]\nname = "toml"\n', "pairs": "a=9",
             "colors": "yellow black", "sizes": "5,5"}
    with Session("config_flow.py") as s:
        start = s.spin("start", config_value=texts)
        assert start.ok, start.error and start.error.traceback
        assert (start.artifacts["lr"], start.artifacts["model_name"], start.artifacts["pair_a"],
                start.artifacts["first_color"], start.artifacts["total"]) == \
            (0.7, "toml", "9", "yellow", 10)
        train = s.spin("train", config_value=texts)
        assert (train.artifacts["env_model"], train.artifacts["env_color"]) == ("toml", "yellow")
        with pytest.raises(DevdError, match=r"parser tomllib.loads refused.*TOMLDecodeError"):
            s.spin("train", config_value={"cfg": "lr = = 1"})


def test_cli_config_value_is_text_for_the_flows_parser(here: Path) -> None:
    out = devd_cli(here, "spin", "config_flow.py", "train", "--no-daemon", "--json",
                   "--config-value", "cfg", 'lr = 0.3\n[model]\nname = "cli"')
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r["summary"] for r in json.loads(out.stdout)["artifacts"]}
    assert rows["env_model"].endswith("'cli'") and rows["body_lr"] == "0.3"
    bad = devd_cli(here, "spin", "config_flow.py", "train", "--no-daemon",
                   "--config-value", "cfg", "{not toml")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "tomllib.loads" in bad.stderr and "Traceback" not in bad.stderr


def test_a_flow_that_names_its_config_file_in_the_environment(here: Path) -> None:
    for task in every_task("EnvConfigFlow"):
        result = devd.spin("env_config_flow.py", task.pathspec)
        assert result.ok, result.error and result.error.traceback
        assert result.artifacts == public_artifacts(task)
    given = devd.spin("env_config_flow.py", "start",
                      config_value={"settings": {"depth": 9, "name": "given"}})
    assert given.ok, given.error and given.error.traceback
    assert given.artifacts["depth"] == 9
    other = here / "env-other.json"
    other.write_text('{"depth": 2, "name": "file"}')
    from_file = devd.spin("env_config_flow.py", "end", config={"settings": str(other)})
    assert from_file.ok and from_file.artifacts["seen"] == "file"


# -- 15. IncludeFile --------------------------------------------------------------------------

def test_included_files_come_back_as_the_client_gives_them(here: Path) -> None:
    for task in every_task("IncludeFlow"):
        result = devd.spin("include_flow.py", task.pathspec)
        assert result.ok, result.error and result.error.traceback
        assert result.artifacts == public_artifacts(task), task.pathspec
    end = devd.spin("include_flow.py", "end")
    assert end.artifacts["notes"] == "first line\nsecond line\n"
    assert end.artifacts["blob"] == bytes(range(256)) * 4 and end.artifacts["size"] == 1024
    rows = {r.name: r.type for r in end.artifact_rows}
    assert (rows["notes"], rows["blob"]) == ("str", "bytes")


# -- 20. @catch --------------------------------------------------------------------------------

def test_a_parent_handled_by_catch_is_a_parent(here: Path) -> None:
    by_name = devd.spin("catch_flow.py", "after")
    assert by_name.ok, by_name.error and by_name.error.traceback
    assert by_name.artifacts["caught"] == "risky failed"
    assert by_name.artifacts["partial"] == "set before the error"
    for task in every_task("CaughtFlow"):
        if task.path_components[2] == "risky":
            continue  # the step that raises: a spin of it raises too (no @catch in a spin)
        result = devd.spin("catch_flow.py", task.pathspec)
        assert result.ok, result.error and result.error.traceback
        assert set(result.artifacts) == set(public_artifacts(task))
        assert result.artifacts.get("caught") == public_artifacts(task).get("caught")


# -- 19. current.task / current.run ------------------------------------------------------

def test_current_task_and_run_are_the_spun_ones(here: Path) -> None:
    result = devd.spin("current_flow.py", "look")
    assert result.ok, result.error and result.error.traceback
    flow, run_id, step, _task_id = result.artifacts["task_path"].split("/")
    assert (flow, step) == ("CurrentFlow", "look") and run_id != result.origin_run_id
    assert result.artifacts["run_path"] == f"CurrentFlow/{run_id}"
    assert result.artifacts["task_finished"] is False
    persisted = devd.spin("current_flow.py", "look", persist=True)
    assert persisted.ok and persisted.artifacts["task_path"] == persisted.pathspec


# -- METAFLOW_DEFAULT_DECOSPECS ------------------------------------------------------------

def test_default_decospecs_do_not_apply_to_a_spin(here: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import metaflow.metaflow_config as config

    monkeypatch.setattr(config, "DEFAULT_DECOSPECS", "timeout:seconds=1")
    result = devd.spin("current_flow.py", "slow")
    assert result.ok, result.error and result.error.message
    out = devd_cli(here, "spin", "current_flow.py", "slow", "--no-daemon",
                   env={"METAFLOW_DEFAULT_DECOSPECS": "timeout:seconds=1"})
    assert out.returncode == 0, out.stderr


# -- 3. a run still being written ----------------------------------------------------------

def _start_held_run(root: Path, step: str) -> tuple[subprocess.Popen, str]:
    """A run of HoldFlow that waits in ``step`` (every task of it) until "hold" goes."""
    (root / "hold").touch()
    id_file = root / f".held-{step}"
    proc = subprocess.Popen(
        [sys.executable, "hold_flow.py", "run", "--run-id-file", str(id_file)],
        cwd=root, env={**os.environ, "HOLD_STEP": step},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if id_file.exists() and id_file.read_text().strip():
            run_id = id_file.read_text().strip()
            step_dir = root / ".metaflow" / "HoldFlow" / run_id / step
            if step_dir.is_dir() and any(step_dir.iterdir()):
                time.sleep(0.5)  # its tasks are running (or about to)
                return proc, run_id
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the held run never reached {step}")


def _release(root: Path, proc: subprocess.Popen) -> None:
    (root / "hold").unlink(missing_ok=True)
    assert proc.wait(timeout=120) == 0


def test_a_run_still_being_written_gives_its_complete_parents_only(here: Path) -> None:
    client_here()
    complete = Flow("HoldFlow").latest_run.id
    proc, held = _start_held_run(here, "start")
    try:
        with Session("hold_flow.py", prepare=False) as s:
            start = s.spin("start")  # its parents (the run's parameters) are complete
            assert start.ok, start.error and start.error.traceback
            assert start.origin_run_id == held
            join = s.spin("join")
            assert join.ok and join.origin_run_id == complete
            assert join.artifacts["squares"] == [1, 4, 9]
            running = next(iter(Flow("HoldFlow")[held]["start"])).pathspec
            assert s.spin(running).origin_run_id == held  # its one parent is complete
    finally:
        _release(here, proc)
    complete = held  # finished now
    proc, held = _start_held_run(here, "body")
    try:
        with Session("hold_flow.py", prepare=False) as s:
            body = s.spin("body")
            assert body.ok, body.error and body.error.traceback
            assert body.origin_run_id == held and body.artifacts["sq"] == 1
            for step in ("join", "end"):
                result = s.spin(step)
                assert result.ok and result.origin_run_id == complete, step
            running = next(iter(Flow("HoldFlow")[held]["body"])).pathspec
            with pytest.raises(DevdError, match=r"stored nothing .*still running"):
                s.spin(running)
    finally:
        _release(here, proc)


# -- 4. imported code outside the flow's folder ---------------------------------------------

def _edit(path: Path, text: str, stamp: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(stamp, stamp))  # a different mtime even within one clock tick


def test_edited_helper_code_outside_the_flow_folder_is_used(
        here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = here / "stale"
    (project / "flows").mkdir(parents=True)
    (project / "lib").mkdir()
    (project / "src" / "stalepkg").mkdir(parents=True)
    (project / "lib" / "helper_lib.py").write_text("FACTOR = 2\n")
    (project / "src" / "stalepkg" / "__init__.py").write_text("from .calc import OFFSET\n")
    (project / "src" / "stalepkg" / "calc.py").write_text("OFFSET = 1\n")
    flow = project / "flows" / "stale_flow.py"
    flow.write_text(STALE_FLOW)
    # An editable install puts the package's source folder on sys.path of every process.
    monkeypatch.setenv("PYTHONPATH", str(project / "src"))
    monkeypatch.syspath_prepend(str(project / "src"))
    run_flow(project / "flows", "stale_flow.py")
    os.chdir(project / "flows")
    assert devd.spin(str(flow), "compute").artifacts["y"] == 21
    _edit(project / "lib" / "helper_lib.py", "FACTOR = 3\n", 10**9)
    assert devd.spin(str(flow), "compute").artifacts["y"] == 31  # a fresh Session
    _edit(project / "src" / "stalepkg" / "calc.py", "OFFSET = 2\n", 2 * 10**9)
    assert devd.spin(str(flow), "compute").artifacts["y"] == 32  # never kept in this process
    with Session(flow) as s:
        assert s.spin("compute").artifacts["y"] == 32
        _wait_prepared(s)
        unchanged = s.spin("compute")
        assert unchanged.artifacts["y"] == 32 and "child.idle" in unchanged.timings
        _wait_prepared(s)
        _edit(project / "lib" / "helper_lib.py", "FACTOR = 4\n", 3 * 10**9)
        assert s.spin("compute").artifacts["y"] == 42
        _wait_prepared(s)
        _edit(project / "src" / "stalepkg" / "calc.py", "OFFSET = 5\n", 4 * 10**9)
        assert s.spin("compute").artifacts["y"] == 45


def _wait_prepared(session: Session) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        prepared = session.prepared.current
        if prepared is not None and "imported" in "".join(prepared.child._out["stdout"]):
            time.sleep(0.2)  # imported, stamped, and Metaflow set up
            return
        time.sleep(0.01)
    raise AssertionError("no child was prepared after the last spin")
