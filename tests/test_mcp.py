"""`devd mcp` driven by the MCP SDK's own stdio client, against a real daemon and real runs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import daemon_environment

MCP_FLOW = '''
from metaflow import FlowSpec, Parameter, step


class McpFlow(FlowSpec):
    n = Parameter("n", default=3, type=int)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.total)

    @step
    def total(self):
        if self.n < 0:
            raise RuntimeError("n must not be negative")
        self.sum = sum(self.items)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    McpFlow()
'''


@pytest.fixture(scope="module")
def mcp_project(project: Path) -> Iterator[Path]:
    """The shared test project (its flows run once), served by a daemon of this module's own."""
    (project / "mcp_flow.py").write_text(MCP_FLOW)
    with daemon_environment("dmcp"):
        yield project
        subprocess.run([sys.executable, "-m", "devd.cli", "daemon", "stop", str(project)],
                       cwd=project, capture_output=True, timeout=60)


@contextlib.asynccontextmanager
async def session(root: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "devd.cli", "mcp"],
                                   cwd=str(root), env=dict(os.environ))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


@pytest.mark.asyncio
async def test_spin_ok_error_and_bad_input_as_tools(mcp_project: Path) -> None:
    async with session(mcp_project) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"spin", "run", "card", "artifacts", "status"} <= names

        ok = await client.call_tool("spin", {"flow": "linear_flow.py", "step": "double"})
        assert not ok.is_error, text_of(ok)
        data = json.loads(text_of(ok))
        assert data["ok"] is True and data["step"] == "double"
        rows = {r["name"]: r for r in data["artifacts"]}
        assert rows["y"]["summary"] == "12"
        assert "y is 12" in data["stdout"]
        assert data["nextCommand"] == 'spin(flow="linear_flow.py", step="end")'
        assert all("html" not in card for card in data["cards"])
        start = await client.call_tool("spin", {"flow": "linear_flow.py", "step": "start"})
        assert not start.is_error, text_of(start)
        chained = json.loads(text_of(await client.call_tool(
            "spin", {"flow": "linear_flow.py", "step": "double", "from_spin": True})))
        assert chained["ok"] is True
        assert chained["nextCommand"] == 'spin(flow="linear_flow.py", step="end", from_spin=true)'

        failed = await client.call_tool("spin", {"flow": "fail_flow.py", "step": "train"})
        assert failed.is_error
        text = text_of(failed)
        line = line_of(mcp_project / "fail_flow.py", "raise ValueError")
        first, source = text.splitlines()[:2]
        assert first == f"fail_flow.py:{line}: ValueError: kk=5 is below 10"
        assert source.strip().startswith("raise ValueError(")
        assert 'spin(flow="fail_flow.py", step="train")' in text
        assert "Traceback" in text and f'fail_flow.py", line {line}, in train' in text
        assert "devd/child/" not in text  # the traceback starts at the user's frames

        override = await client.call_tool("spin", {"flow": "fail_flow.py", "step": "train",
                                                   "artifacts": {"kk": 30}})
        assert not override.is_error, text_of(override)
        assert {"name": "model", "type": "int", "summary": "60"} in json.loads(
            text_of(override))["artifacts"]

        bad = await client.call_tool("spin", {"flow": "linear_flow.py", "step": "nope"})
        assert bad.is_error and "LinearFlow has no step 'nope'" in text_of(bad)
        missing = await client.call_tool("spin", {"flow": "nowhere.py", "step": "start"})
        assert missing.is_error and "nowhere.py: no such file" in text_of(missing)


@pytest.mark.asyncio
async def test_card_is_text_and_artifacts_show_one_value(mcp_project: Path) -> None:
    async with session(mcp_project) as client:
        card = await client.call_tool("card", {"flow": "card_flow.py", "step": "report"})
        assert not card.is_error, text_of(card)
        text = text_of(card)
        for expected in ("# Quarterly report", "Total is **8**.", "region | units",
                         "north | 4", "south | 8", "[image: red square]", "epochs: 7/10",
                         "Accuracy: 93%", "## Notes from the default card"):
            assert expected in text, (expected, text)
        assert "<div" not in text and "<script" not in text

        arts = await client.call_tool("artifacts", {"flow": "linear_flow.py",
                                                    "step": "double", "name": "x"})
        assert not arts.is_error, text_of(arts)
        data = json.loads(text_of(arts))
        assert {r["name"] for r in data["artifacts"]} >= {"x", "y", "label"}
        assert data["value"]["repr"] == "[1, 2, 3]" and data["value"]["type"] == "list"
        unknown = await client.call_tool("artifacts", {"flow": "linear_flow.py",
                                                       "step": "double", "name": "nope"})
        assert unknown.is_error and "has no artifact 'nope'" in text_of(unknown)

        status = json.loads(text_of(await client.call_tool("status", {})))
        assert status["daemonRunning"] is True and status["pid"] > 0
        assert any(f.endswith("linear_flow.py") for f in status["flows"])
        assert any(s["step"] == "report" for s in status["lastSpins"])


@pytest.mark.asyncio
async def test_run_records_parents_stale_ones_are_warned_and_a_failed_run_names_its_line(
        mcp_project: Path) -> None:
    async with session(mcp_project) as client:
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        run = await client.call_tool("run", {"flow": "mcp_flow.py", "args": ["--n", "5"]},
                                     progress_callback=on_progress)
        assert not run.is_error, text_of(run)
        assert [p[2] for p in progress] == ["1/3 steps (start)", "2/3 steps (total)",
                                            "3/3 steps (end)"]
        assert progress[-1][:2] == (100, 100)
        data = json.loads(text_of(run))
        assert data["ok"] is True and data["returncode"] == 0 and data["runId"]
        spun = json.loads(text_of(await client.call_tool(
            "spin", {"flow": "mcp_flow.py", "step": "total"})))
        assert spun["originRunId"] == data["runId"]
        assert {"name": "sum", "type": "int", "summary": "10"} in spun["artifacts"]
        assert spun["warnings"] == [] and spun["nextCommand"] == (
            'spin(flow="mcp_flow.py", step="end")')

        flow = mcp_project / "mcp_flow.py"
        flow.write_text(MCP_FLOW.replace("list(range(self.n))", "list(range(self.n))  # edited"))
        stale = json.loads(text_of(await client.call_tool(
            "spin", {"flow": "mcp_flow.py", "step": "total"})))
        assert stale["ok"] is True and stale["nextCommand"] == 'run(flow="mcp_flow.py")'
        assert stale["warnings"] == [
            f"code of step 'start' changed since run {data['runId']}: the parents do not "
            'reflect it; `run(flow="mcp_flow.py")` records them again']

        failed = await client.call_tool("run", {"flow": "mcp_flow.py", "args": ["--n", "-1"]})
        assert failed.is_error
        line = line_of(mcp_project / "mcp_flow.py", "raise RuntimeError")
        text = text_of(failed)
        assert text.splitlines()[0] == (f"mcp_flow.py:{line}: RuntimeError: n must not be "
                                        "negative"), text
        assert 'spin(flow="mcp_flow.py", step="total")' in text


def test_without_the_sdk_devd_mcp_says_what_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['mcp'] = None; from devd.cli.main import main; "
            "sys.exit(main(['mcp']))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "devd: the MCP server needs the MCP Python SDK 2.x: install it with "
        "`pip install 'devd[mcp]'` (or `pip install 'mcp>=2,<3'`)"]


@pytest.mark.asyncio
async def test_graph_and_runs_as_tools(mcp_project: Path) -> None:
    """Issue 20: an agent reads what the last run did, step by step, and the recent runs."""
    async with session(mcp_project) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"graph", "runs"} <= names
        graph = await client.call_tool("graph", {"flow": "fail_flow.py"})
        assert not graph.is_error, text_of(graph)
        data = json.loads(text_of(graph))
        assert data["file"] == "fail_flow.py" and data["run"]["status"] == "failed"
        states = {n["step"]: n["state"] for n in data["nodes"]}
        assert states["start"] == "ok" and states["end"] == "not-run"
        assert "failed" in states.values()
        runs = json.loads(text_of(await client.call_tool("runs", {"flow": "linear_flow.py"})))
        assert runs["flow"] == "LinearFlow" and runs["runs"][0]["status"] == "ok"
        unknown = await client.call_tool("graph", {"flow": "linear_flow.py", "run_id": "42"})
        assert unknown.is_error and "no run LinearFlow/42" in text_of(unknown)
        outside = await client.call_tool("runs", {"flow": "../x.py"})
        assert outside.is_error and "outside the project" in text_of(outside)


@pytest.mark.asyncio
async def test_a_recorded_runs_tasks_artifacts_and_logs_as_tools(mcp_project: Path) -> None:
    """Issue 20 item 4: what Metaflow's own MCP server offers for a recorded run: its steps
    and tasks, a task's artifacts and one value, and the end of a task's logs."""
    runs = eval((mcp_project / "runs.txt").read_text())  # the run ids conftest recorded
    async with session(mcp_project) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"tasks", "task_artifacts", "logs"} <= names

        run_id = runs["foreach_flow.py"]
        every = json.loads(text_of(await client.call_tool(
            "tasks", {"flow": "foreach_flow.py", "run_id": run_id})))
        steps = {s["step"]: s for s in every["steps"]}
        assert set(steps) == {"start", "body", "join", "end"}
        assert all(s["state"] == "ok" for s in steps.values())
        body = steps["body"]["tasks"]
        assert [t["index"] for t in body] == list(range(6))
        assert [t["input"] for t in body] == ["3", "1", "4", "1", "5", "9"]
        one = json.loads(text_of(await client.call_tool(
            "tasks", {"flow": "foreach_flow.py", "run_id": run_id, "step": "body"})))
        assert one["steps"][0]["tasks"] == body

        third = body[2]["pathspec"]
        rows = {r["name"]: r for r in json.loads(text_of(await client.call_tool(
            "task_artifacts", {"flow": "foreach_flow.py", "pathspec": third})))["artifacts"]}
        assert rows["sq"]["summary"] == "16" and rows["item"]["summary"] == "4"
        value = json.loads(text_of(await client.call_tool(
            "task_artifacts", {"flow": "foreach_flow.py", "pathspec": third,
                               "name": "stack"})))["value"]
        assert value["kind"] == "json" and json.loads(value["text"]) == [[2, 6]], value
        unknown = await client.call_tool("task_artifacts", {
            "flow": "foreach_flow.py", "pathspec": third, "name": "nope"})
        assert unknown.is_error and "nope" in text_of(unknown)

        double = json.loads(text_of(await client.call_tool("tasks", {
            "flow": "linear_flow.py", "run_id": runs["linear_flow.py"], "step": "double"})))
        pathspec = double["steps"][0]["tasks"][0]["pathspec"]
        logs = json.loads(text_of(await client.call_tool(
            "logs", {"flow": "linear_flow.py", "pathspec": pathspec})))
        by_stream = {log["stream"]: log for log in logs["logs"]}
        assert set(by_stream) == {"stdout", "stderr"}
        assert "y is 12\n" in by_stream["stdout"]["text"]
        assert by_stream["stdout"]["leftOut"] == 0

        train = json.loads(text_of(await client.call_tool("tasks", {
            "flow": "fail_flow.py", "run_id": runs["fail_flow.py"], "step": "train"})))
        failed = train["steps"][0]["tasks"][0]
        assert failed["state"] == "failed"
        stderr = json.loads(text_of(await client.call_tool("logs", {
            "flow": "fail_flow.py", "pathspec": failed["pathspec"], "stream": "stderr"})))
        assert [log["stream"] for log in stderr["logs"]] == ["stderr"]
        assert "ValueError: kk=5 is below 10" in stderr["logs"][0]["text"]
        last = json.loads(text_of(await client.call_tool("logs", {
            "flow": "fail_flow.py", "pathspec": failed["pathspec"], "stream": "stderr",
            "tail": 1})))["logs"][0]
        assert last["text"].count("\n") == 1 and last["leftOut"] == last["lines"] - 1 > 0

        for bad, why in (({"pathspec": pathspec.rsplit("/", 1)[0]}, "is not a task"),
                         ({"pathspec": pathspec, "stream": "both"}, "no log stream 'both'"),
                         ({"pathspec": pathspec, "tail": 0}, "tail must be 1 to 10000")):
            refused = await client.call_tool("logs", {"flow": "linear_flow.py", **bad})
            assert refused.is_error and why in text_of(refused), text_of(refused)
