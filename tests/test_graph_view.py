"""`devd graph` and `devd runs` (issue 20, the CLI part): every graph shape Metaflow has,
each step's state read from real runs' task records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devd.core.flowmodel import load_flow_model
from devd.core.graph import RunRecord, StepRecord, flow_graph
from tests.conftest import run_flow
from tests.wirehelp import cli

SWITCH_FLOW = '''\
from metaflow import FlowSpec, step


class SwitchLoopFlow(FlowSpec):
    @step
    def start(self):
        self.mode = "fast"
        self.count = 0
        self.next({"fast": self.quick, "slow": self.careful}, condition="mode")

    @step
    def quick(self):
        self.next(self.again)

    @step
    def careful(self):
        self.next(self.again)

    @step
    def again(self):
        self.count += 1
        self.state = "more" if self.count < 3 else "done"
        self.next({"more": self.again, "done": self.end}, condition="state")

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchLoopFlow()
'''


def _graph(root: Path, flow: str, *extra: str) -> dict:
    out = cli(root, "graph", flow, "--json", *extra)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _states(data: dict) -> dict[str, tuple[str, int, int]]:
    return {n["step"]: (n["state"], n["tasksOk"], n["tasks"]) for n in data["nodes"]}


def test_linear_branch_foreach_and_nested_runs(project: Path) -> None:
    linear = _graph(project, "linear_flow.py")
    assert linear["run"]["status"] == "ok"
    assert all(state == "ok" for state, _, _ in _states(linear).values())
    branch = _graph(project, "branch_flow.py")
    starts = next(n for n in branch["nodes"] if n["step"] == "start")
    assert starts["type"] == "split" and len(starts["next"]) > 1
    assert {e["to"] for e in branch["edges"] if e["from"] == "start"} == set(starts["next"])
    foreach = _graph(project, "foreach_flow.py")
    start = next(n for n in foreach["nodes"] if n["step"] == "start")
    assert start["type"] == "foreach" and start["foreach"]
    body = _states(foreach)["body"]
    assert body[0] == "ok" and body[2] > 1 and body[1] == body[2]  # every split counted
    nested = _states(_graph(project, "nested_flow.py"))
    assert nested["mid"][2] == 2 and nested["leaf"][2] == 6  # 2 outer x 3 inner splits
    assert nested["inner_join"][2] == 2 and nested["outer_join"][2] == 1


def test_a_failed_run_marks_the_failing_step_and_what_never_ran(project: Path) -> None:
    data = _graph(project, "fail_flow.py")
    assert data["run"]["status"] == "failed"
    states = {step: state for step, (state, _, _) in _states(data).items()}
    assert "failed" in states.values() and states["end"] == "not-run"
    assert states["start"] == "ok"
    text = cli(project, "graph", "fail_flow.py")
    assert text.returncode == 0 and "failed" in text.stdout and "✗" in text.stdout


def test_switch_cases_and_recursion(project: Path) -> None:
    root = project / "switchloop"
    root.mkdir(exist_ok=True)
    (root / "switch_loop_flow.py").write_text(SWITCH_FLOW)
    run_flow(root, "switch_loop_flow.py")
    data = _graph(root, "switch_loop_flow.py")
    nodes = {n["step"]: n for n in data["nodes"]}
    assert nodes["start"]["type"] == "split-switch" and nodes["start"]["condition"] == "mode"
    assert nodes["start"]["cases"] == {"fast": "quick", "slow": "careful"}
    assert {(e["to"], e["label"]) for e in data["edges"] if e["from"] == "start"} == {
        ("quick", "fast"), ("careful", "slow")}
    assert "again" in nodes["again"]["next"]  # the recursive edge
    states = _states(data)
    assert states["quick"][0] == "ok" and states["careful"][0] == "not-run"  # not taken
    assert states["again"] == ("ok", 3, 3)  # three passes through the recursive step
    text = cli(root, "graph", "switch_loop_flow.py").stdout
    assert "again ↺ (if state == 'more')" in text and "quick (if mode == 'fast')" in text


def test_runs_lists_the_newest_first_with_status_and_tags(project: Path) -> None:
    root = project / "runslist"
    root.mkdir(exist_ok=True)
    (root / "linear_flow.py").write_text((project / "linear_flow.py").read_text())
    first = run_flow(root, "linear_flow.py")
    second = run_flow(root, "linear_flow.py", "--tag", "exp1")
    data = json.loads(cli(root, "runs", "linear_flow.py", "--json").stdout)
    ids = [r["runId"] for r in data["runs"]]
    assert ids[:2] == [second, first]
    assert data["runs"][0]["tags"] == ["exp1"] and data["runs"][0]["status"] == "ok"
    assert data["runs"][0]["durationS"] is not None
    limited = json.loads(cli(root, "runs", "linear_flow.py", "--json", "--limit", "1").stdout)
    assert [r["runId"] for r in limited["runs"]] == [second]
    picked = _graph(root, "linear_flow.py", "--run", str(first))
    assert picked["run"]["runId"] == first


def test_a_flow_never_run_and_an_unknown_run_id(project: Path, tmp_path: Path) -> None:
    root = tmp_path
    (root / ".metaflow").mkdir()  # its own records: Metaflow looks upwards for the nearest
    (root / "branch_flow.py").write_text((project / "branch_flow.py").read_text())
    data = _graph(root, "branch_flow.py")
    assert data["run"] is None and {n["state"] for n in data["nodes"]} == {"not-run"}
    text = cli(root, "graph", "branch_flow.py").stdout
    assert "no run yet" in text and "devd run branch_flow.py" in text
    assert "no run yet" in cli(root, "runs", "branch_flow.py").stdout
    bad = cli(project, "graph", "linear_flow.py", "--run", "123")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "no run LinearFlow/123" in bad.stderr and "devd runs" in bad.stderr


def test_states_come_from_the_run_staleness_and_spins_from_the_caller(project: Path) -> None:
    """The pure part: a run's step records and the engine's marks become node states."""
    model = load_flow_model(str(project / "branch_flow.py"))
    steps = list(model.steps)
    run = RunRecord("BranchFlow", "7", "running", 1.0, None, "u", (), {
        steps[0]: StepRecord(1, 1, 0, 0, 1.0, 2.0),
        steps[1]: StepRecord(1, 0, 0, 1, 2.0, None),
    })
    graph = flow_graph(model, run, stale={steps[0]}, last_spins={steps[1]: (False, 5.0)})
    nodes = {n.step: n for n in graph.nodes}
    assert nodes[steps[0]].state == "ok" and nodes[steps[0]].stale
    assert nodes[steps[0]].duration_s == pytest.approx(1.0)
    assert nodes[steps[1]].state == "running" and nodes[steps[1]].last_spin == "failed"
    assert nodes[steps[-1]].state == "not-run" and not nodes[steps[-1]].stale
    assert [n.step for n in graph.nodes] == steps  # Metaflow's order


def test_through_the_daemon_the_graph_knows_edits_and_spins(project: Path,
                                                            tmp_path: Path) -> None:
    """With a daemon running, `devd graph` (devd/graph) also marks the steps whose code
    changed since the run, and each step's last spin."""
    import os

    from tests.wirehelp import make_project

    root = make_project(project, ("linear_flow.py",), "dvgr", run=("linear_flow.py",))
    env = {**os.environ, "DEVD_RUNTIME_DIR": str(tmp_path / "rt"), "DEVD_IDLE_TIMEOUT": "120"}
    assert cli(root, "daemon", "start", env=env).returncode == 0
    try:
        assert cli(root, "spin", "linear_flow.py", "double", env=env).returncode == 0
        before = json.loads(cli(root, "graph", "linear_flow.py", "--json", env=env).stdout)
        nodes = {n["step"]: n for n in before["nodes"]}
        assert nodes["double"]["lastSpin"] == "ok" and nodes["double"]["lastSpinAt"]
        assert not any(n["stale"] for n in before["nodes"])
        flow = root / "linear_flow.py"
        flow.write_text(flow.read_text().replace("sum(self.x) * self.alpha",
                                                 "sum(self.x) * self.alpha + 1"))
        after = json.loads(cli(root, "graph", "linear_flow.py", "--json", env=env).stdout)
        assert [n["step"] for n in after["nodes"] if n["stale"]] == ["double"]
        text = cli(root, "graph", "linear_flow.py", env=env).stdout
        assert "stale" in text and "spun: ok" in text
    finally:
        cli(root, "daemon", "stop", env=env)


def test_a_runs_tasks_and_a_tasks_artifacts_through_the_daemon(project: Path,
                                                                tmp_path: Path) -> None:
    """devd/tasks and devd/task (the runs explorer's levels): a foreach body's tasks with
    their split and input, a task's artifacts with summaries."""
    import os

    from devd.cli.client import file_uri
    from tests.wirehelp import make_project

    root = make_project(project, ("foreach_flow.py",), "dvtk", run=("foreach_flow.py",))
    env = {**os.environ, "DEVD_RUNTIME_DIR": str(tmp_path / "rt"), "DEVD_IDLE_TIMEOUT": "120"}
    assert cli(root, "daemon", "start", env=env).returncode == 0
    try:
        graph = json.loads(cli(root, "graph", "foreach_flow.py", "--json", env=env).stdout)
        run_id = graph["run"]["runId"]
        script = (
            "import json, sys\n"
            "from devd.cli.daemons import daemon_for\n"
            "c = daemon_for(sys.argv[1])\n"
            "uri, run_id = sys.argv[2], sys.argv[3]\n"
            "with c:\n"
            "    tasks = c.request('devd/tasks', {'uri': uri, 'runId': run_id, 'step': 'body'})\n"
            "    first = c.request('devd/task',\n"
            "                      {'uri': uri, 'pathspec': tasks['tasks'][0]['pathspec']})\n"
            "    bad = c.request('devd/tasks', {'uri': uri, 'runId': run_id, 'step': 'nope'})\n"
            "print(json.dumps([tasks, first, bad]))\n")
        import subprocess
        import sys

        out = subprocess.run([sys.executable, "-c", script, str(root),
                              file_uri(str(root / "foreach_flow.py")), run_id],
                             cwd=root, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        tasks, first, bad = json.loads(out.stdout)
        assert tasks["ok"] and len(tasks["tasks"]) > 1
        assert [t["index"] for t in tasks["tasks"]] == list(range(len(tasks["tasks"])))
        assert all(t["state"] == "ok" and t["input"] is not None for t in tasks["tasks"])
        assert first["ok"] and first["artifacts"]
        assert all(not row["name"].startswith("_") for row in first["artifacts"])
        assert all({"name", "type", "summary"} <= set(row) for row in first["artifacts"])
        assert not bad["ok"] and "has no step 'nope'" in bad["error"]["message"]
    finally:
        cli(root, "daemon", "stop", env=env)
