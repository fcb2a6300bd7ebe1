"""The warm spin engine against real Metaflow runs: every shape, overrides, failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from metaflow import Flow, namespace

import devd
from devd import DevdError, Session


def public_artifacts(task) -> dict:
    return {a.id: a.data for a in task if not a.id.startswith("_")}


def latest_run(flow_name: str):
    namespace("user:devd-test")
    return Flow(flow_name).latest_run


@pytest.mark.parametrize(
    "flow_file,flow_name",
    [
        ("linear_flow.py", "LinearFlow"),
        ("branch_flow.py", "BranchFlow"),
        ("foreach_flow.py", "ForeachFlow"),
        ("nested_flow.py", "NestedFlow"),
        ("config_flow.py", "ConfigFlow"),
    ],
)
def test_every_recorded_task_is_reproduced_by_a_spin_of_its_pathspec(
    in_project: Path, flow_file: str, flow_name: str
) -> None:
    run = latest_run(flow_name)
    assert run.successful
    checked = 0
    with Session(flow_file) as session:
        for step in run:
            for task in step:
                result = session.spin(task.pathspec)
                assert result.ok, result.error and result.error.traceback
                expected = public_artifacts(task)
                if "branch_order" in expected:  # random order in Metaflow, see the flow
                    assert sorted(result.artifacts.pop("branch_order")) == sorted(
                        expected.pop("branch_order"))
                assert result.artifacts == expected, task.pathspec
                step_info = session.model.steps[step.id]
                assert result.next_steps == list(step_info.out_funcs)
                checked += 1
    assert checked >= 3


def test_join_of_six_inputs_keeps_foreach_order(in_project: Path) -> None:
    result = devd.spin("foreach_flow.py", "join")
    assert result.ok
    assert result.artifacts["order"] == [0, 1, 2, 3, 4, 5]
    assert result.artifacts["squares"] == [9, 1, 16, 1, 25, 81]
    assert len(result.parents) == 6


def test_foreach_body_sees_input_index_and_stack(in_project: Path) -> None:
    run = latest_run("ForeachFlow")
    task = sorted(run["body"].tasks(), key=lambda t: t.index)[4]
    result = devd.spin("foreach_flow.py", task.pathspec)
    assert result.artifacts["item"] == 5
    assert result.artifacts["idx"] == 4
    assert result.artifacts["stack"] == [(4, 6)]


def test_nested_foreach_leaf_and_joins(in_project: Path) -> None:
    with Session("nested_flow.py") as s:
        leaf = s.spin("leaf")
        assert leaf.ok and leaf.artifacts["val"] == "a1"
        assert leaf.artifacts["path"] == [(0, "a"), (0, 1)]
        inner = s.spin("inner_join")
        assert inner.artifacts["vals"] == ["a1", "a2", "a3"]
        outer = s.spin("outer_join")
        assert outer.artifacts["all"] == [["a1", "a2", "a3"], ["b1", "b2", "b3"]]


def test_next_steps_and_stdout(in_project: Path) -> None:
    result = devd.spin("linear_flow.py", "double")
    assert result.ok
    assert result.next_steps == ["end"]
    assert "y is 12" in result.stdout
    assert result.artifacts["alpha"] == 2


def test_static_join_branch_order_and_merge(in_project: Path) -> None:
    result = devd.spin("branch_flow.py", "join")
    assert result.artifacts["vs"] == [11, 12, 13]
    assert result.artifacts["branch_order"] == [11, 12, 13]  # a, b, c: declaration order
    assert result.artifacts["from_a"] == 11
    assert result.artifacts["only_a"] == "A"
    assert result.artifacts["shared"] == "same"


def test_artifact_overrides_dict_and_module(in_project: Path) -> None:
    result = devd.spin("linear_flow.py", "double", artifacts={"x": [10, 20]})
    assert result.artifacts["y"] == 60
    assert result.artifacts["x"] == [10, 20]
    module = in_project / "overrides.py"
    module.write_text("ARTIFACTS = {'x': [5]}\n")
    result = devd.spin("linear_flow.py", "double", artifacts_module=str(module))
    assert result.artifacts["y"] == 10
    param = devd.spin("linear_flow.py", "double", artifacts={"alpha": 10})
    assert param.artifacts["y"] == 60 and param.artifacts["alpha"] == 10


def test_join_overrides_keyed_by_parent_pathspec(in_project: Path) -> None:
    with Session("foreach_flow.py") as s:
        plan = s.plan("join")
        first = plan.parents[0].pathspec
        short = "/".join(first.split("/")[1:])
        r = s.spin("join", artifacts={short: {"sq": 1000}})
        assert r.artifacts["squares"][0] == 1000
        assert r.artifacts["squares"][1:] == [1, 16, 1, 25, 81]
        r2 = s.spin("join", artifacts={first: {"sq": -1}})
        assert r2.artifacts["squares"][0] == -1


def test_configs_reach_decorators_and_body(in_project: Path) -> None:
    recorded = devd.spin("config_flow.py", "train")
    assert (recorded.artifacts["lr"], recorded.artifacts["tag"]) == (0.1, "base")
    assert recorded.artifacts["env_tag"] == "base"
    given = devd.spin("config_flow.py", "train",
                      config_value={"settings": {"lr": 0.5, "tag": "tuned"}})
    assert given.ok, given.error and given.error.traceback
    assert given.artifacts["lr"] == 0.5
    assert given.artifacts["tag"] == "tuned"
    assert given.artifacts["env_tag"] == "tuned"
    other = in_project / "other.json"
    other.write_text('{"lr": 0.9, "tag": "file"}')
    from_file = devd.spin("config_flow.py", "train", config={"settings": str(other)})
    assert (from_file.artifacts["lr"], from_file.artifacts["env_tag"]) == (0.9, "file")


def test_failure_reports_type_message_and_line(in_project: Path) -> None:
    result = devd.spin("fail_flow.py", "train")
    assert not result.ok
    assert result.error.type == "ValueError"
    assert "kk=5 is below 10" in result.error.message
    source = (in_project / "fail_flow.py").read_text().splitlines()
    assert "raise ValueError" in source[result.error.lineno - 1]
    assert result.error.filename.endswith("fail_flow.py")
    assert "Traceback" in result.error.traceback
    fixed = devd.spin("fail_flow.py", "train", artifacts={"kk": 15})
    assert fixed.ok and fixed.artifacts["model"] == 30


def test_in_place_mutation_never_reaches_warm_state(in_project: Path) -> None:
    with Session("chaos_flow.py") as s:
        first = s.spin("mutate")
        second = s.spin("mutate")
        assert first.ok and second.ok
        assert first.artifacts == second.artifacts
        assert first.artifacts["data"] == [1, 2, 3, 4]
        assert first.artifacts["table"] == {"a": 1, "n": 1}


@pytest.mark.parametrize("mode,expect", [
    ("exit", "exited with code 3"),
    ("segv", "SIGSEGV"),
    ("raise", "boom"),
])
def test_crashes_in_the_step_leave_the_session_usable(in_project: Path, mode: str,
                                                       expect: str) -> None:
    with Session("chaos_flow.py") as s:
        bad = s.spin("mutate", artifacts={"mode": mode})
        assert not bad.ok
        assert expect in bad.error.message
        good = s.spin("mutate")
        assert good.ok and good.artifacts["total"] == 10


def test_monkeypatching_in_a_step_does_not_leak(in_project: Path) -> None:
    import json

    with Session("chaos_flow.py") as s:
        patched = s.spin("mutate", artifacts={"mode": "patch"})
        assert not patched.ok  # json.dumps = None breaks the step's own json.dumps call
        assert json.dumps({"x": 1}) == '{"x": 1}'
        assert s.spin("mutate").artifacts["json_ok"] == '{"x": 1}'


def test_decorators_environment_current_and_skipped_notice(in_project: Path) -> None:
    result = devd.spin("chaos_flow.py", "decorated")
    assert result.ok, result.error and result.error.traceback
    assert result.artifacts["env"] == "yes"
    assert result.artifacts["where"] == ["ChaosFlow", "decorated"]
    assert result.artifacts["ids_set"] is True
    assert any("@retry" in n for n in result.notices)
    assert result.card_components and result.card_components[0]["type"] == "default"


def test_timeout_decorator_stops_a_slow_step(in_project: Path) -> None:
    result = devd.spin("chaos_flow.py", "decorated", artifacts={"mode": "slow"})
    assert not result.ok
    assert "Timeout" in result.error.type or "timeout" in result.error.message.lower()


def test_edits_count_without_restarting_the_session(in_project: Path) -> None:
    path = in_project / "edit_flow.py"
    source = (in_project / "linear_flow.py").read_text().replace("LinearFlow", "EditFlow")
    path.write_text(source)
    from tests.conftest import run_flow

    run_flow(in_project, "edit_flow.py")
    with Session(path) as s:
        assert s.spin("double").artifacts["y"] == 12
        path.write_text(source.replace("sum(self.x) * self.alpha", "sum(self.x) * 100"))
        os.utime(path, ns=(1, 1))  # a different mtime even within one clock tick
        assert s.spin("double").artifacts["y"] == 600


def test_persist_is_read_back_by_inspect_spin_and_latest_run_untouched(in_project: Path) -> None:
    latest = in_project / ".metaflow" / "LinearFlow" / "latest_run"
    before = latest.read_text() if latest.exists() else None
    result = devd.spin("linear_flow.py", "double", persist=True)
    assert result.ok and result.persisted
    task = result.task
    assert task is not None
    assert task.data.y == 12
    assert task["x"].data == [1, 2, 3]
    assert (latest.read_text() if latest.exists() else None) == before
    # the same pathspec through Metaflow's own inspect_spin
    code = (
        "from metaflow import Task, namespace\n"
        "from metaflow.client.core import inspect_spin\n"
        "inspect_spin('.'); namespace(None)\n"
        f"print(Task('{result.pathspec}', _namespace_check=False).data.y)\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], cwd=in_project, capture_output=True,
                         text=True, env=os.environ)
    assert out.stdout.strip() == "12", out.stderr


def test_non_persisted_spins_write_nothing(in_project: Path) -> None:
    spin_dir = in_project / ".metaflow_spin"
    before = sorted(p for p in spin_dir.rglob("*")) if spin_dir.exists() else []
    metaflow_dir = in_project / ".metaflow"
    mf_before = sorted(p for p in metaflow_dir.rglob("*"))
    devd.spin("linear_flow.py", "double")
    after = sorted(p for p in spin_dir.rglob("*")) if spin_dir.exists() else []
    assert after == before
    assert sorted(p for p in metaflow_dir.rglob("*")) == mf_before


def test_bad_input_gives_one_clear_line(in_project: Path) -> None:
    with pytest.raises(DevdError, match="no such file"):
        devd.spin("nope.py", "start")
    with pytest.raises(DevdError, match="its steps are: start, double, end"):
        devd.spin("linear_flow.py", "nosuch")
    (in_project / "notflow.py").write_text("x = 1\n")
    with pytest.raises(DevdError, match="not a Metaflow flow"):
        devd.spin("notflow.py", "start")
    broken = "from metaflow import FlowSpec\nclass B(FlowSpec):\n  def (\n"
    (in_project / "broken.py").write_text(broken)
    with pytest.raises(DevdError, match=r"broken.py:3: SyntaxError"):
        devd.spin("broken.py", "start")
    (in_project / "norun_flow.py").write_text(
        (in_project / "linear_flow.py").read_text().replace("LinearFlow", "NeverRunFlow"))
    with pytest.raises(DevdError, match=r"no run of NeverRunFlow yet.*devd run"):
        devd.spin("norun_flow.py", "double")
    import subprocess
    import sys

    other_user = subprocess.run(
        [sys.executable, "-m", "devd.cli", "spin", "linear_flow.py", "double"],
        cwd=in_project, capture_output=True, text=True, env={**os.environ, "USER": "someone"})
    assert other_user.returncode == 2
    assert "no run of LinearFlow yet (in namespace user:someone)" in other_user.stderr
    with pytest.raises(DevdError, match="no run LinearFlow/123"):
        devd.spin("linear_flow.py", "123/double")
    with pytest.raises(DevdError, match="no Config 'nope'"):
        devd.spin("config_flow.py", "train", config_value={"nope": {}})


def test_parent_task_gone_is_one_clear_line(in_project: Path) -> None:
    import shutil

    from tests.conftest import run_flow

    source = (in_project / "linear_flow.py").read_text().replace("LinearFlow", "GoneFlow")
    (in_project / "gone_flow.py").write_text(source)
    run_flow(in_project, "gone_flow.py")
    shutil.rmtree(in_project / ".metaflow" / "GoneFlow" / "data")
    with pytest.raises(DevdError, match=r"parent task .*GoneFlow/\d+.* is gone.*devd run"):
        devd.spin("gone_flow.py", "double")


def test_fork_free_spawn_path_gives_the_same_result(in_project: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVD_NO_FORK", "1")
    result = devd.spin("foreach_flow.py", "join")
    assert result.ok, result.error and result.error.traceback
    assert result.artifacts["squares"] == [9, 1, 16, 1, 25, 81]


def test_status_lists_last_spins_oldest_first_newest_last(in_project: Path) -> None:
    """Clients take the last entry of a flow as its newest spin (devd: Show Card Preview):
    the order is the order the spins finished in, never the steps' names (issue 19)."""
    from devd.common.options import SpinOptions
    from devd.core.engine import Engine

    flow = str(in_project / "linear_flow.py")
    engine = Engine(str(in_project), budget_bytes=1 << 26)
    try:
        for step in ("start", "end", "double"):
            assert engine.spin(flow, SpinOptions(step)).ok
        order = [s.step for s in engine.status().last_spins if s.flow == flow]
        assert order == ["start", "end", "double"]
        assert engine.spin(flow, SpinOptions("start")).ok  # spun again: now the newest
        order = [s.step for s in engine.status().last_spins if s.flow == flow]
    finally:
        engine.close()
    assert order == ["end", "double", "start"]


def test_a_hover_before_any_spin_says_what_is_true(in_project: Path) -> None:
    """Before any spin, a hover on a parent's artifact of a flow that has been run says to
    spin the step (its parents come from that run), not to "spin or run the flow"; a flow
    never run says to run it (issue 19, item 10)."""
    from devd.core.engine import Engine
    from devd.lsp.features import hover_text

    path = str(in_project / "linear_flow.py")
    source = (in_project / "linear_flow.py").read_text()
    line = next(i for i, text in enumerate(source.splitlines()) if "sum(self.x)" in text)
    engine = Engine(str(in_project), None)
    try:
        text = hover_text(engine, path, source, line, "x")
    finally:
        engine.close()
    run_id = eval((in_project / "runs.txt").read_text())["linear_flow.py"]  # the fixture's repr
    assert text is not None and "spin or run" not in text, text
    assert "spin 'double'" in text and f"run {run_id}" in text, text

    never = in_project / "never_run_flow.py"  # the same flow under a name never run
    never.write_text(source.replace("LinearFlow", "NeverRunFlow"))
    engine = Engine(str(in_project), None)
    try:
        text = hover_text(engine, str(never), never.read_text(), line, "x")
    finally:
        engine.close()
        never.unlink()
    assert text is not None and "no run" in text and "Run Flow" in text, text
