"""Features found by reproducing Metaflow's own test flows (bench/external_suite.py), each
written fresh here: every flow is run for real, then its recorded tasks are spun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from metaflow import Flow, Task, namespace

from devd import Session
from tests.conftest import run_flow

RETRY_FLOW = '''\
from metaflow import FlowSpec, current, retry, step


class FlakyFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.flaky, foreach="items")

    @retry(times=2)
    @step
    def flaky(self):
        if current.retry_count < 1:
            raise RuntimeError("first attempt fails")
        self.attempt = current.retry_count
        self.doubled = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.doubled for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FlakyFlow()
'''

NAMESPACE_FLOW = '''\
from metaflow import FlowSpec, current, get_namespace, step


class NamespaceFlow(FlowSpec):
    @step
    def start(self):
        self.ns = get_namespace()
        self.tags = current.tags
        self.next(self.end)

    @step
    def end(self):
        self.ns_end = get_namespace()


if __name__ == "__main__":
    NamespaceFlow()
'''

CLIENT_FLOW = '''\
from metaflow import FlowSpec, current, step


class ClientObjectFlow(FlowSpec):
    @step
    def start(self):
        self.task_obj = current.task  # Client objects as artifacts, as Metaflow's tests do
        self.run_obj = current.run
        self.where = current.task.pathspec.split("/")[2]
        self.next(self.end)

    @step
    def end(self):
        self.seen = self.where


if __name__ == "__main__":
    ClientObjectFlow()
'''

USER_DECO_FLOW = '''\
from metaflow import FlowSpec, step, user_step_decorator, StepMutator


@user_step_decorator
def stamp(step_name, flow, inputs=None, attributes=None):
    flow.before = f"before {step_name}"
    yield
    flow.after = f"after {step_name}"


class AddStamp(StepMutator):
    def mutate(self, mutable_step):
        mutable_step.add_decorator(stamp, deco_kwargs={}, duplicates=mutable_step.IGNORE)


class UserDecoFlow(FlowSpec):
    @stamp
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @AddStamp
    @step
    def end(self):
        self.y = self.x + 1


if __name__ == "__main__":
    UserDecoFlow()
'''

ORIGIN_FLOW = '''\
from metaflow import FlowSpec, current, step


class OriginFlow(FlowSpec):
    @step
    def start(self):
        self.started_in = current.origin_run_id
        self.next(self.again)

    @step
    def again(self):
        self.origin = current.origin_run_id
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    OriginFlow()
'''

CAUGHT_FLOW = '''\
from metaflow import FlowSpec, catch, step


class CaughtFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.risky)

    @catch(var="problem")
    @step
    def risky(self):
        self.before = self.x
        raise ValueError("caught in the run")
        self.next(self.end)

    @step
    def end(self):
        self.saw = self.problem.type


if __name__ == "__main__":
    CaughtFlow()
'''

FLOWS = {"flaky_flow.py": RETRY_FLOW, "namespace_flow.py": NAMESPACE_FLOW,
         "client_flow.py": CLIENT_FLOW, "user_deco_flow.py": USER_DECO_FLOW,
         "origin_flow.py": ORIGIN_FLOW, "caught_flow.py": CAUGHT_FLOW}


def public_artifacts(task: Task) -> dict:
    return {a.id: a.data for a in task if not a.id.startswith("_")}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("shapes")
    for name, text in FLOWS.items():
        (root / name).write_text(text)
    previous = os.getcwd()
    os.chdir(root)
    for name in FLOWS:
        run_flow(root, name, *(("--tag", "alpha", "--tag", "b c") if name == "namespace_flow.py"
                               else ()))
    first = (root / ".runid-origin_flow.py").read_text().strip()
    subprocess.run([sys.executable, "origin_flow.py", "resume", "again", "--origin-run-id",
                    first], cwd=root, check=True, capture_output=True, timeout=300)
    yield root
    os.chdir(previous)


@pytest.fixture
def here(shapes: Path) -> Path:
    from devd.core.metaflowenv import bind_metaflow_root

    os.chdir(shapes)
    bind_metaflow_root()
    namespace("user:devd-test")
    return shapes


def test_a_retried_task_is_spun_as_its_recorded_attempt(here: Path) -> None:
    run = Flow("FlakyFlow").latest_run
    tasks = list(run["flaky"])
    assert [int(t.current_attempt) for t in tasks] == [1, 1]
    with Session("flaky_flow.py") as s:
        for task in tasks:
            result = s.spin(task.pathspec)  # current.retry_count is the recorded attempt
            assert result.ok, result.error and result.error.traceback
            assert result.artifacts == public_artifacts(task)
            assert result.artifacts["attempt"] == 1
        first = s.spin("flaky")  # by step name: a new task, its first attempt
        assert not first.ok and "first attempt fails" in first.error.message
        join = s.spin(run["join"].task.pathspec)
        assert join.ok and join.artifacts["total"] == 6


def test_a_step_sees_the_namespace_and_tags_of_a_task_of_the_run(here: Path) -> None:
    run = Flow("NamespaceFlow").latest_run
    assert run["start"].task["ns"].data == "user:devd-test"
    assert run["start"].task["tags"].data == {"alpha", "b c"}  # current.tags: the run's
    namespace(None)  # the warm process browses every namespace (a notebook might)
    try:
        with Session("namespace_flow.py") as s:
            for task in (run["start"].task, run["end"].task):
                result = s.spin(task.pathspec)
                assert result.ok, result.error and result.error.traceback
                assert result.artifacts == public_artifacts(task)
    finally:
        namespace("user:devd-test")


def test_client_objects_of_the_spun_task_as_artifacts(here: Path) -> None:
    run = Flow("ClientObjectFlow").latest_run
    start = run["start"].task
    with Session("client_flow.py") as s:
        result = s.spin(start.pathspec)
        assert result.ok, result.error and result.error.traceback
        assert result.artifacts["where"] == "start"
        # The spun task's Task/Run live in the throwaway spin's metadata, gone with its
        # process: named, not a failed spin.
        assert "Task" in repr(result.artifacts["task_obj"])
        assert any("`task_obj`" in n for n in result.notices), result.notices
        persisted = s.spin(start.pathspec, persist=True)  # stored: a real Task
        assert persisted.ok and persisted.artifacts["task_obj"].pathspec == persisted.pathspec
        end = s.spin(run["end"].task.pathspec)  # reads its parent's Task artifacts
        assert end.ok and end.artifacts["seen"] == "start"
        assert end.artifacts["task_obj"].pathspec == start.pathspec  # passed down as recorded


def test_user_step_decorators_and_step_mutators_run_in_a_spin(here: Path) -> None:
    run = Flow("UserDecoFlow").latest_run
    with Session("user_deco_flow.py") as s:
        for task in (run["start"].task, run["end"].task):
            result = s.spin(task.pathspec)
            assert result.ok, result.error and result.error.traceback
            assert result.artifacts == public_artifacts(task)
        assert s.spin("end").artifacts["after"] == "after end"  # added by the mutator


def test_origin_run_id_is_the_recorded_one(here: Path) -> None:
    resumed, first = list(Flow("OriginFlow").runs())[:2]  # newest first
    assert resumed["again"].task["origin"].data == first.id
    with Session("origin_flow.py") as s:
        for task in (first["start"].task, first["again"].task, resumed["again"].task):
            result = s.spin(task.pathspec)  # not the parents' run id: None, or the origin
            assert result.ok, result.error and result.error.traceback
            assert result.artifacts == public_artifacts(task), task.pathspec
        assert s.spin("again").artifacts["origin"] == first.id  # the resumed run's


def spin_json(cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-m", "devd.cli", "spin", *args, "--no-daemon",
                          "--json"], cwd=cwd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout)


def test_the_decorators_a_spin_runs_follow_metaflows_setting(here: Path) -> None:
    default = spin_json(here, "caught_flow.py", "risky")  # @catch is for real runs
    assert default["ok"] is False and default["error"]["type"] == "ValueError"
    assert default["notices"] == ["@catch skipped in a spin (it applies to `devd run`)"]
    allowed = json.dumps(["catch", "environment", "timeout", "card", "project"])
    opted_in = spin_json(here, "caught_flow.py", "risky",
                         env={"METAFLOW_SPIN_ALLOWED_DECORATORS": allowed})
    assert opted_in["ok"] is True and opted_in["notices"] == []  # as `flow.py spin` would
    assert "problem" in {row["name"] for row in opted_in["artifacts"]}
