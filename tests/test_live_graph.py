"""The flow view's live states (issue 20): while a run goes, the daemon pushes every step's
state (``devd/runProgress``) as tasks start and finish, read from the run's task records,
so an editor redraws its nodes without asking again. Through a real daemon and a real run.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from devd.lsp.translate import plain
from tests.conftest import daemon_environment
from tests.wirehelp import cli

FLOW = '''\
import time

from metaflow import FlowSpec, step


class LiveFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        time.sleep(1.5)
        self.sq = self.input ** 2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LiveFlow()
'''
STEPS = ["start", "body", "gather", "end"]


@pytest.fixture(scope="module")
def live_project() -> Any:
    root = Path(tempfile.mkdtemp(prefix="dvlive"))
    (root / "live_flow.py").write_text(FLOW)
    with daemon_environment("dvlv"):
        yield root
        cli(root, "daemon", "stop", str(root))
    shutil.rmtree(root, ignore_errors=True)


async def connect(root: Path) -> Any:
    """An editor's connection (it sent ``initialize``: broadcasts reach it)."""
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "devd.cli", "serve", "--stdio", "--root",
                        str(root)],
        server_env=os.environ.copy())
    lsp = await config.start()
    lsp.progressed = []

    @lsp.feature("devd/runProgress")
    def on_progress(params: Any) -> None:
        lsp.progressed.append(plain(params))

    await lsp.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=root.as_uri()))
    return lsp


@pytest_asyncio.fixture
async def editor(live_project: Path) -> AsyncIterator[Any]:
    lsp = await connect(live_project)
    yield lsp
    await lsp.shutdown_session()
    await lsp.stop()


@pytest.mark.asyncio
async def test_a_run_pushes_each_steps_state_as_its_tasks_start_and_end(
        editor: LanguageClient, live_project: Path) -> None:
    uri = (live_project / "live_flow.py").as_uri()
    result = plain(await editor.protocol.send_request_async("devd/run", {"uri": uri}))
    assert result["ok"], result
    pushed = editor.progressed
    assert pushed, "no devd/runProgress during the run"
    assert {p["runId"] for p in pushed} == {result["runId"]}
    assert all(p["uri"] == uri and [s["step"] for s in p["steps"]] == STEPS for p in pushed)
    body = [next(s for s in p["steps"] if s["step"] == "body") for p in pushed]
    # body's splits were seen running (a task started, none finished yet), then both ok
    assert any(b["state"] == "running" for b in body), body
    assert body[-1] == {**body[-1], "state": "ok", "tasks": 2, "tasksOk": 2}
    running = next(i for i, b in enumerate(body) if b["state"] == "running")
    assert all(b["state"] != "not-run" for b in body[running:])  # never back
    last = {s["step"]: s["state"] for s in pushed[-1]["steps"]}
    assert last == dict.fromkeys(STEPS, "ok")
    # one push per change: no two in a row say the same
    assert all(a["steps"] != b["steps"] for a, b in itertools.pairwise(pushed))


def test_the_runs_list_is_kept_until_a_run_is_added(live_project: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow view and the runs tree ask often: the runs list is read once until a run is
    added (the flow's metadata directory changes), a finished run's record once."""
    from devd.core import runcache
    from devd.core.graph import read_run, recent_runs
    from tests.conftest import run_flow

    monkeypatch.chdir(live_project)
    runcache.forget()
    first = run_flow(live_project, "live_flow.py")
    listed = runcache.run_list("LiveFlow")
    assert runcache.run_list("LiveFlow") is listed  # nothing added: not listed again
    newest = read_run("LiveFlow")
    assert newest is not None and newest.run_id == first and newest.status == "ok"
    assert read_run("LiveFlow") is newest  # finished: read once
    second = run_flow(live_project, "live_flow.py")
    assert runcache.run_list("LiveFlow") is not listed  # a run was added
    runs = recent_runs("LiveFlow", 2)
    assert [r.run_id for r in runs] == [second, first] and {r.status for r in runs} == {"ok"}
    assert read_run("LiveFlow").run_id == second
    assert read_run("LiveFlow", first) is newest


@pytest.mark.asyncio
async def test_a_daemon_there_before_the_first_run_keeps_runs_and_sees_new_ones(
        live_project: Path) -> None:
    """A daemon asked for the runs before the project had any, then running the first: a
    finished run's record is read once (a later edit of its record is not re-read), and a
    run added shows first."""
    import json

    from tests.conftest import run_flow

    root = Path(tempfile.mkdtemp(prefix="dvfresh"))  # no .metaflow here or above
    shutil.copy(live_project / "live_flow.py", root / "live_flow.py")
    uri = (root / "live_flow.py").as_uri()
    editor = await connect(root)

    async def runs() -> list[dict[str, Any]]:
        answer = plain(await editor.protocol.send_request_async(
            "devd/runs", {"uri": uri, "limit": 50}))
        assert answer["ok"], answer
        return answer["runs"]

    try:
        assert await runs() == []  # asked before any run
        run = plain(await editor.protocol.send_request_async("devd/run", {"uri": uri}))
        first = run["runId"]  # run by the daemon (Ctrl+Alt+R)
        assert run["ok"] and (await runs())[0]["runId"] == first
        record = root / ".metaflow" / "LiveFlow" / first / "_meta" / "_self.json"
        data = json.loads(record.read_text())
        record.write_text(json.dumps({**data, "tags": ["probe"]}))  # no run added: kept
        assert (await runs())[0]["tags"] == []
        second = run_flow(root, "live_flow.py")
        assert [r["runId"] for r in (await runs())[:2]] == [second, first]
    finally:
        await editor.shutdown_session()
        await editor.stop()
        cli(root, "daemon", "stop", str(root))
        shutil.rmtree(root, ignore_errors=True)
