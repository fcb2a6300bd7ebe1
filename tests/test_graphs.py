"""Graph shapes of Metaflow 2.19 beyond split/join/foreach: ``merge_artifacts`` read back in
the same join, switch steps (``self.next({...}, condition=...)``) and recursive steps, also
inside a foreach. Every flow is run for real; every recorded task is spun by pathspec and
compared with what Metaflow's Client shows for it. Also: what a spin prints and stores
(other steps' skipped decorators, a crashed spin's recorded task, persisted cards).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from metaflow import Flow, Task, inspect_spin, namespace
from metaflow.cards import get_cards

import devd
from devd import Session
from tests.conftest import run_flow

MERGE_FLOW = '''\
from metaflow import FlowSpec, step


class MergeReadFlow(FlowSpec):
    @step
    def start(self):
        self.shared = {"k": [1, 2]}
        self.next(self.a, self.b)

    @step
    def a(self):
        self.only_a = "from a"
        self.both = 1
        self.next(self.join)

    @step
    def b(self):
        self.only_b = "from b"
        self.both = 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs, exclude=["both"])
        self.both = sum(i.both for i in inputs)
        self.summary = f"{self.only_a} + {self.only_b}: {self.shared['k']}"
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MergeReadFlow()
'''

SWITCH_FLOW = '''\
from metaflow import FlowSpec, Parameter, step


class SwitchFlow(FlowSpec):
    mode = Parameter("mode", default="fast")

    @step
    def start(self):
        self.route = self.mode
        self.next({"fast": self.fast, "slow": self.slow}, condition="route")

    @step
    def fast(self):
        self.speed = 10
        self.next(self.merge)

    @step
    def slow(self):
        self.speed = 1
        self.next(self.merge)

    @step
    def merge(self):
        self.seen = self.speed * 2
        self.next(self.loop)

    @step
    def loop(self):
        self.count = getattr(self, "count", 0) + 1
        self.done = self.count >= 3
        self.next({True: self.after, False: self.loop}, condition="done")

    @step
    def after(self):
        self.final = (self.count, self.seen)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchFlow()
'''

LOOP_FLOW = '''\
from metaflow import FlowSpec, step


class ForeachLoopFlow(FlowSpec):
    @step
    def start(self):
        self.targets = [2, 3]
        self.next(self.body, foreach="targets")

    @step
    def body(self):
        self.target = self.input
        self.count = 0
        self.next(self.grow)

    @step
    def grow(self):
        self.count += 1
        self.done = self.count >= self.target
        self.next({True: self.out, False: self.grow}, condition="done")

    @step
    def out(self):
        self.reached = self.count
        self.next(self.join)

    @step
    def join(self, inputs):
        self.reached = [i.reached for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ForeachLoopFlow()
'''

DECO_FLOW = '''\
import os

from metaflow import FlowSpec, resources, retry, step


class DecoFlow(FlowSpec):
    @step
    def start(self):
        print("hello from start")
        self.x = 1
        self.next(self.heavy)

    @retry(times=2)
    @resources(memory=100)
    @step
    def heavy(self):
        if os.environ.get("CRASH_HEAVY"):
            os._exit(3)
        self.y = self.x + 1
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DecoFlow()
'''

CARD_FLOW = '''\
from metaflow import FlowSpec, card, current, step
from metaflow.cards import Markdown


class CardSpinFlow(FlowSpec):
    @step
    def start(self):
        self.x = 41
        self.next(self.report)

    @card(type="blank", id="summary")
    @card
    @step
    def report(self):
        self.y = self.x + 1
        current.card["summary"].append(Markdown("# answer is " + str(self.y)))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CardSpinFlow()
'''


def public_artifacts(task: Task) -> dict:
    return {a.id: a.data for a in task if not a.id.startswith("_")}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("graphs")
    for name, text in {"merge_flow.py": MERGE_FLOW, "switch_flow.py": SWITCH_FLOW,
                       "loop_flow.py": LOOP_FLOW, "deco_flow.py": DECO_FLOW,
                       "card_flow.py": CARD_FLOW}.items():
        (root / name).write_text(text)
    previous = os.getcwd()
    os.chdir(root)
    for flow in ("merge_flow.py", "switch_flow.py", "loop_flow.py", "deco_flow.py",
                 "card_flow.py"):
        run_flow(root, flow)
    run_flow(root, "switch_flow.py", "--mode", "slow")
    yield root
    os.chdir(previous)


@pytest.fixture
def here(graphs: Path) -> Path:
    from devd.core.metaflowenv import bind_metaflow_root

    os.chdir(graphs)
    bind_metaflow_root()
    namespace("user:devd-test")
    return graphs


def assert_every_task_reproduced(flow_file: str, run) -> None:
    tasks = [task for step in run for task in step]
    assert tasks
    with Session(flow_file) as s:
        for task in tasks:
            result = s.spin(task.pathspec)
            assert result.ok, (task.pathspec, result.error and result.error.traceback)
            assert result.artifacts == public_artifacts(task), task.pathspec
            assert result.recorded_task == task.pathspec


# -- 16. merge_artifacts, then a merged artifact read in the same join ----------------------

def test_a_merged_artifact_is_readable_in_the_join(here: Path) -> None:
    assert_every_task_reproduced("merge_flow.py", Flow("MergeReadFlow").latest_run)
    join = devd.spin("merge_flow.py", "join")
    assert join.ok, join.error and join.error.traceback
    assert join.artifacts["summary"] == "from a + from b: [1, 2]"
    assert join.artifacts["both"] == 3
    persisted = devd.spin("merge_flow.py", "join", persist=True)
    assert persisted.ok and persisted.artifacts["summary"] == "from a + from b: [1, 2]"


# -- 17. switch and recursive steps ---------------------------------------------------------

def test_every_task_of_switch_and_recursive_steps_is_reproduced(here: Path) -> None:
    runs = list(Flow("SwitchFlow").runs())
    assert {r["start"].task["route"].data for r in runs} == {"fast", "slow"}
    for run in runs:
        assert_every_task_reproduced("switch_flow.py", run)


def test_recursive_steps_inside_a_foreach_are_reproduced(here: Path) -> None:
    run = Flow("ForeachLoopFlow").latest_run
    assert len(list(run["grow"])) == 5  # 2 + 3 iterations
    assert_every_task_reproduced("loop_flow.py", run)


def test_switch_and_loop_steps_by_name(here: Path) -> None:
    with Session("switch_flow.py") as s:
        loop = s.spin("loop")  # the first iteration, entered from merge
        assert loop.ok, loop.error and loop.error.traceback
        assert (loop.artifacts["count"], loop.next_steps) == (1, ["loop"])
        after = s.spin("after")
        assert after.ok and after.artifacts["final"][0] == 3
        other = s.spin("fast")  # a case the newest run (mode slow) did not take
        assert other.ok and other.artifacts["speed"] == 10


# -- what a spin prints and stores ----------------------------------------------------------

def devd_cli(cwd: Path, *args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_other_steps_skipped_decorators_are_not_in_the_output(here: Path) -> None:
    start = devd.spin("deco_flow.py", "start")
    assert start.ok and start.stdout == "hello from start\n", start.stdout
    assert start.notices == []
    heavy = devd.spin("deco_flow.py", "heavy")  # its own: one notice each, in the result
    assert heavy.ok and "Ignoring" not in heavy.stdout + heavy.stderr
    assert sorted(n.split()[0] for n in heavy.notices) == ["@resources", "@retry"]
    out = devd_cli(here, "spin", "deco_flow.py", "start", "--no-daemon")
    assert out.returncode == 0 and "Ignoring" not in out.stdout + out.stderr, out.stdout


def test_a_crashed_spin_still_names_its_recorded_task(here: Path) -> None:
    recorded = Flow("DecoFlow").latest_run["heavy"].task.pathspec
    out = devd_cli(here, "spin", "deco_flow.py", recorded, "--no-daemon", "--json",
                   env={"CRASH_HEAVY": "1"})
    answer = json.loads(out.stdout)
    assert answer["ok"] is False and answer["error"]["type"] == "devd.ChildCrashed"
    assert answer["recordedTask"] == recorded


def test_persisted_cards_are_found_by_get_cards(here: Path) -> None:
    result = devd.spin("card_flow.py", "report", persist=True)
    assert result.ok, result.error and result.error.traceback
    assert result.pathspec
    inspect_spin(str(here))
    try:
        task = Task(result.pathspec, _namespace_check=False)
        assert task["y"].data == 42
        cards = get_cards(task)
        assert sorted(c.type for c in cards) == ["blank", "default"]
        summary = get_cards(task, id="summary")
        assert len(summary) == 1 and summary[0].get() in result.cards  # the html devd shows
    finally:
        namespace("user:devd-test")
        from devd.core.metaflowenv import bind_metaflow_root

        bind_metaflow_root()
