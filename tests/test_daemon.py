"""The daemon through its real protocol: `devd serve --stdio` driven by pytest-lsp, and
terminal clients on the project socket, all sharing one warm state."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from devd.common.project import daemon_paths
from devd.lsp.translate import plain
from tests.conftest import daemon_environment, run_flow


@pytest.fixture(scope="module")
def daemon_project(project: Path) -> Any:
    """A project copy of its own, with a short runtime dir; its daemon is stopped after."""
    root = Path(tempfile.mkdtemp(prefix="dvp"))
    for name in ("linear_flow.py", "fail_flow.py", "slow_flow.py", "chaos_flow.py",
                 "card_flow.py"):
        shutil.copy(project / name, root / name)
    (root / "lint_flow.py").write_text(
        "from metaflow import FlowSpec, step\n\n\nclass LintFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def middle(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n")
    with daemon_environment("dvr"):
        for flow in ("linear_flow.py", "slow_flow.py", "chaos_flow.py", "card_flow.py"):
            run_flow(root, flow)
        run_flow(root, "fail_flow.py", check=False)
        yield root
        cli(root, "daemon", "stop", str(root))


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env=env or os.environ.copy())


def uri(root: Path, name: str) -> str:
    return (root / name).as_uri()


@pytest_asyncio.fixture
async def client(daemon_project: Path) -> Any:
    lsp = await start_client(daemon_project, {"spinOnSave": True})
    yield lsp
    await lsp.shutdown_session()
    await lsp.stop()


async def start_client(daemon_project: Path, options: dict[str, Any]) -> Any:
    """An editor's connection: `devd serve --stdio`, initialized with ``options``."""
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "devd.cli", "serve", "--stdio", "--root",
                        str(daemon_project)],
        server_env=os.environ.copy(),
    )
    lsp = await config.start()
    lsp.devd_logs = []
    lsp.devd_finished = []
    lsp.devd_state = []
    lsp.devd_cards = []

    @lsp.feature("devd/log")
    def on_log(params: Any) -> None:
        lsp.devd_logs.append(plain(params))

    @lsp.feature("devd/spinFinished")
    def on_finished(params: Any) -> None:
        lsp.devd_finished.append(plain(params))

    @lsp.feature("devd/cardUpdated")
    def on_card(params: Any) -> None:
        lsp.devd_cards.append(plain(params))

    @lsp.feature("devd/stateChanged")
    def on_state(params: Any) -> None:
        lsp.devd_state.append(plain(params))

    await lsp.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True)),
        root_uri=daemon_project.as_uri(),
        initialization_options=options,
    ))
    return lsp


async def call(lsp: LanguageClient, method: str, params: dict[str, Any]) -> Any:
    return plain(await lsp.protocol.send_request_async(method, params))


def open_doc(lsp: LanguageClient, root: Path, name: str) -> None:
    lsp.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri(root, name), language_id="python",
                                             version=1, text=(root / name).read_text())))


def line_of(root: Path, name: str, needle: str) -> int:
    """0-based line of the first line containing ``needle``."""
    return next(i for i, line in enumerate((root / name).read_text().splitlines())
                if needle in line)


@pytest.mark.asyncio
async def test_spin_streams_logs_and_returns_the_result(client: LanguageClient,
                                                        daemon_project: Path) -> None:
    result = await call(client, "devd/spin", {"uri": uri(daemon_project, "linear_flow.py"),
                                              "step": "double"})
    assert result["ok"] is True, result
    rows = {r["name"]: r for r in result["artifacts"]}
    assert rows["y"]["type"] == "int" and rows["y"]["summary"] == "12"
    assert result["nextSteps"] == ["end"]
    assert "y is 12" in result["stdout"]
    await asyncio.sleep(0.2)
    assert any("y is 12" in log["text"] for log in client.devd_logs)
    assert any(f["step"] == "double" for f in client.devd_finished)


@pytest.mark.asyncio
async def test_spin_by_cursor_line_and_bad_targets(client: LanguageClient,
                                                   daemon_project: Path) -> None:
    flow = uri(daemon_project, "linear_flow.py")
    line = line_of(daemon_project, "linear_flow.py", "self.y = sum")
    result = await call(client, "devd/spin", {"uri": flow, "line": line})
    assert result["ok"] and result["step"] == "double"
    outside = await call(client, "devd/spin", {"uri": flow, "line": 0})
    assert outside["ok"] is False
    assert "not inside a step" in outside["error"]["message"]
    assert "start, double, end" in outside["error"]["message"]
    unknown = await call(client, "devd/spin", {"uri": flow, "step": "nope"})
    assert unknown["ok"] is False and "its steps are: start, double, end" in \
        unknown["error"]["message"]
    missing = await call(client, "devd/spin", {"uri": uri(daemon_project, "gone.py"),
                                               "step": "x"})
    assert missing["ok"] is False and "no such file" in missing["error"]["message"]


@pytest.mark.asyncio
async def test_code_lenses_hover_and_completion(client: LanguageClient,
                                                daemon_project: Path) -> None:
    name = "linear_flow.py"
    open_doc(client, daemon_project, name)
    lenses = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri(daemon_project,
                                                                            name))))
    titles = [(lens.range.start.line, lens.command.title) for lens in lenses]
    start_line = line_of(daemon_project, name, "@step")
    assert (start_line, "▶ Spin") in titles and (start_line, "Run flow") in titles
    assert sum(1 for _, t in titles if t == "▶ Spin") == 3
    assert sum(1 for _, t in titles if t == "Resume from here") == 2
    assert (line_of(daemon_project, name, "class LinearFlow"), "Show flow") in titles

    await call(client, "devd/spin", {"uri": uri(daemon_project, name), "step": "double"})
    y_line = line_of(daemon_project, name, "self.y = sum")
    row = (daemon_project / name).read_text().splitlines()[y_line]
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri(daemon_project, name)),
        position=types.Position(y_line, row.index("self.y") + 5)))
    assert hover is not None and "`int`" in hover.contents.value and "12" in \
        hover.contents.value
    x_col = row.index("self.x") + 5
    hover_x = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri(daemon_project, name)),
        position=types.Position(y_line, x_col)))
    assert "`list`" in hover_x.contents.value and "len 3" in hover_x.contents.value

    z_line = line_of(daemon_project, name, "self.z = ")
    completion = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri(daemon_project, name)),
        position=types.Position(z_line, (daemon_project / name).read_text().splitlines()[
            z_line].index("self.y") + 5)))
    labels = {item.label for item in completion.items}
    assert {"x", "y", "label", "alpha"} <= labels


@pytest.mark.asyncio
async def test_diagnostics_lint_and_failed_spin_line(client: LanguageClient,
                                                     daemon_project: Path) -> None:
    open_doc(client, daemon_project, "lint_flow.py")
    lint_uri = uri(daemon_project, "lint_flow.py")
    for _ in range(50):
        if client.diagnostics.get(lint_uri):
            break
        await asyncio.sleep(0.1)
    messages = [d.message for d in client.diagnostics[lint_uri]]
    assert any("middle" in m for m in messages), messages

    fail = uri(daemon_project, "fail_flow.py")
    open_doc(client, daemon_project, "fail_flow.py")
    result = await call(client, "devd/spin", {"uri": fail, "step": "train"})
    assert result["ok"] is False
    raise_line = line_of(daemon_project, "fail_flow.py", "raise ValueError")
    for _ in range(50):
        diags = client.diagnostics.get(fail) or []
        if any(d.range.start.line == raise_line for d in diags):
            break
        await asyncio.sleep(0.1)
    assert any(d.range.start.line == raise_line and "ValueError" in d.message
               for d in client.diagnostics[fail])
    fixed = await call(client, "devd/spin", {"uri": fail, "step": "train",
                                             "artifacts": {"kk": 50}})
    assert fixed["ok"] is True
    for _ in range(50):
        if not client.diagnostics.get(fail):
            break
        await asyncio.sleep(0.1)
    assert not client.diagnostics.get(fail)


@pytest.mark.asyncio
async def test_a_failed_spin_diagnostic_goes_when_its_step_is_edited(
        client: LanguageClient, daemon_project: Path) -> None:
    """The squiggle of a failed spin is about code: once the step's lines change (saved), it
    goes without another spin; edits elsewhere in the file keep it."""
    name = "fail_edit_flow.py"
    path = daemon_project / name
    path.write_text((daemon_project / "fail_flow.py").read_text())  # same flow, same runs
    open_doc(client, daemon_project, name)
    result = await call(client, "devd/spin", {"uri": path.as_uri(), "step": "train"})
    assert result["ok"] is False

    async def diagnostics_settle(want: bool) -> list[types.Diagnostic]:
        for _ in range(100):
            found = [d for d in client.diagnostics.get(path.as_uri()) or []
                     if "spin of 'train' failed" in d.message]
            if bool(found) == want:
                return found
            await asyncio.sleep(0.1)
        return found

    assert await diagnostics_settle(True)
    source = path.read_text()
    path.write_text(source.replace("    def end(self):\n        pass",
                                   "    def end(self):\n        print('done')"))
    client.text_document_did_save(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(path.as_uri())))
    await asyncio.sleep(1.0)
    assert await diagnostics_settle(True), "an edit of another step dropped the diagnostic"
    path.write_text(path.read_text().replace("if self.kk < self.threshold:",
                                             "if self.kk < self.threshold - 100:"))
    client.text_document_did_save(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(path.as_uri())))
    assert not await diagnostics_settle(False), "the failed-spin diagnostic outlived its code"


@pytest.mark.asyncio
async def test_run_streams_output_with_progress_then_becomes_the_parent(
        client: LanguageClient, daemon_project: Path) -> None:
    flow = uri(daemon_project, "linear_flow.py")
    result = await call(client, "devd/run", {"uri": flow, "args": ["--alpha", "3"]})
    assert result["ok"] is True and result["runId"]
    assert any("Task finished successfully" in log["text"] for log in client.devd_logs)
    reports = [r for token, rs in client.progress_reports.items() if "run" in str(token)
               for r in rs]
    assert any(getattr(r, "kind", "") == "report" and "steps" in (r.message or "")
               for r in reports), reports
    spun = await call(client, "devd/spin", {"uri": flow, "step": "double"})
    assert spun["originRunId"] == result["runId"]
    assert {r["name"]: r["summary"] for r in spun["artifacts"]}["y"] == "18"


@pytest.mark.asyncio
async def test_resume_is_metaflows_own_and_missing_uri_is_invalid_params(
        client: LanguageClient, daemon_project: Path) -> None:
    from pygls.exceptions import JsonRpcInvalidParams

    flow = uri(daemon_project, "fail_flow.py")
    failed = await call(client, "devd/run", {"uri": flow})
    assert failed["ok"] is False and failed["runId"]
    resumed = await call(client, "devd/resume", {"uri": flow, "step": "train",
                                                 "originRunId": failed["runId"],
                                                 "args": []})
    assert resumed["ok"] is False  # still k=5: the step fails again, for real
    assert resumed["runId"] and resumed["runId"] != failed["runId"]
    assert any("kk=5 is below 10" in log["text"] for log in client.devd_logs)
    with pytest.raises(JsonRpcInvalidParams):
        await client.protocol.send_request_async("devd/resume", {"step": "train"})


@pytest.mark.asyncio
async def test_cancel_and_supersede_while_requests_stay_answered(
        client: LanguageClient, daemon_project: Path) -> None:
    flow = uri(daemon_project, "slow_flow.py")
    open_doc(client, daemon_project, "slow_flow.py")
    slow = asyncio.ensure_future(call(client, "devd/spin", {
        "uri": flow, "step": "nap", "artifacts": {"seconds": 30}}))
    await asyncio.sleep(1.0)
    lenses = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(flow)))
    assert lenses and not slow.done()  # answered while the spin still runs
    status = await call(client, "devd/status", {})
    assert any(w["step"] == "nap" for w in status["running"])
    newer = asyncio.ensure_future(call(client, "devd/spin", {
        "uri": flow, "step": "nap", "artifacts": {"seconds": 30}}))
    first = await asyncio.wait_for(slow, 20)
    assert first["ok"] is False and "superseded" in first["error"]["message"]
    assert first["cancelled"] == "superseded"
    await asyncio.sleep(0.5)
    cancelled = await call(client, "devd/cancel", {"target": "nap"})
    assert cancelled["cancelled"]
    second = await asyncio.wait_for(newer, 20)
    assert second["ok"] is False and "cancelled" in second["error"]["message"]
    assert second["cancelled"] == "user"  # its own outcome (issue 19, item 5)
    # A stopped spin is no failure: no diagnostic, and the step's last spin is not it.
    await asyncio.sleep(1.0)
    diagnostics = [d.message for d in client.diagnostics.get(flow, [])]
    assert not any("Cancelled" in m or "cancelled" in m for m in diagnostics), diagnostics
    status = await call(client, "devd/status", {})
    assert not any(s["step"] == "nap" and not s["ok"] for s in status["lastSpins"])
    after = await call(client, "devd/spin", {"uri": flow, "step": "nap"})
    assert after["ok"] is True


@pytest.mark.asyncio
async def test_a_save_and_a_spin_of_one_action_make_one_spin(
        client: LanguageClient, daemon_project: Path) -> None:
    """spinOnSave and an editor's Spin on an unsaved file (saved first): one spin, whichever
    of didSave and devd/spin arrives first (issue 19, item 3)."""
    name = "slow_flow.py"
    flow = uri(daemon_project, name)
    open_doc(client, daemon_project, name)
    first = await call(client, "devd/spin", {"uri": flow, "step": "nap"})  # spun last
    assert first["ok"] is True

    def save() -> None:
        path = daemon_project / name
        path.write_text(path.read_text())
        client.text_document_did_save(types.DidSaveTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=flow)))

    def started() -> int:
        return sum(1 for s in client.devd_state
                   if s["reason"] == "spinStarted" and s.get("step") == "nap")

    before = started()
    save()  # the save first, then the Spin that caused it
    joined = await call(client, "devd/spin", {"uri": flow, "step": "nap"})
    await asyncio.sleep(2.0)
    assert joined["ok"] is True and joined.get("cancelled") is None, joined
    assert started() - before == 1

    before = started()
    path = daemon_project / name
    path.write_text(path.read_text())  # saved, then the Spin, then its didSave
    spin = asyncio.ensure_future(call(client, "devd/spin", {"uri": flow, "step": "nap"}))
    await asyncio.sleep(0.3)
    client.text_document_did_save(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=flow)))
    result = await asyncio.wait_for(spin, 30)
    await asyncio.sleep(2.0)
    assert result["ok"] is True and result.get("cancelled") is None, result
    assert started() - before == 1

    before = started()  # a Spin long after the save is a new action: it spins
    again = await call(client, "devd/spin", {"uri": flow, "step": "nap"})
    assert again["ok"] is True and started() - before == 1


@pytest.mark.asyncio
async def test_status_card_and_user_crashes_keep_the_daemon(client: LanguageClient,
                                                            daemon_project: Path) -> None:
    chaos = uri(daemon_project, "chaos_flow.py")
    crash = await call(client, "devd/spin", {"uri": chaos, "step": "mutate",
                                             "artifacts": {"mode": "exit"}})
    assert crash["ok"] is False and "exited with code 3" in crash["error"]["message"]
    deco = await call(client, "devd/spin", {"uri": chaos, "step": "decorated"})
    assert deco["ok"] is True
    card = await call(client, "devd/card", {"uri": chaos, "step": "decorated"})
    assert card["ok"] is True and card["spin"]["step"] == "decorated"
    status = await call(client, "devd/status", {})
    assert status["budgetBytes"] > 0 and status["warmBytes"] > 0
    assert any(t["pathspec"].startswith("ChaosFlow/") and t["sizeBytes"] > 0
               for t in status["warm"])
    nothing = await call(client, "devd/card", {"uri": chaos, "step": "end"})
    assert nothing["ok"] is False and "no spin of 'end'" in nothing["error"]["message"]


@pytest.mark.asyncio
async def test_live_card_updates_and_card_preview(client: LanguageClient,
                                                  daemon_project: Path) -> None:
    flow = uri(daemon_project, "card_flow.py")
    result = await call(client, "devd/spin", {"uri": flow, "step": "live",
                                              "artifacts": {"delay": 1.1}})
    assert result["ok"], result
    updates = [u for u in client.devd_cards if u["step"] == "live"]
    assert updates, "no devd/cardUpdated arrived while the step ran"
    assert all(u["uri"] == flow and u["card"]["type"] == "blank" for u in updates)
    assert any(u["card"].get("html") for u in updates)  # first render: the layout
    assert any(u["card"]["components"] for u in updates)  # then component updates
    card = await call(client, "devd/card", {"uri": flow, "step": "live"})
    assert card["ok"] and card["cards"][0]["type"] == "blank"
    assert card["preview"].startswith("<!DOCTYPE html>") and "iframe" in card["preview"]


@pytest.mark.asyncio
async def test_spin_chain_and_staleness(client: LanguageClient, daemon_project: Path) -> None:
    work = daemon_project / "chain_flow.py"
    source = (daemon_project / "linear_flow.py").read_text().replace("LinearFlow", "ChainFlow")
    work.write_text(source)
    run_flow(daemon_project, "chain_flow.py")
    flow = work.as_uri()
    no_parent = await call(client, "devd/spin", {"uri": flow, "step": "double",
                                                 "fromSpin": True})
    assert no_parent["ok"] is False and "spin 'start' first" in no_parent["error"]["message"]
    start = await call(client, "devd/spin", {"uri": flow, "step": "start",
                                             "artifacts": {}})
    assert start["ok"]
    work.write_text(source.replace("self.x = [1, 2, 3]", "self.x = [1, 2, 3, 4]"))
    # recorded parents: the run ran the old `start`
    recorded = await call(client, "devd/spin", {"uri": flow, "step": "double"})
    assert {"step": "start", "reason": recorded["stale"][0]["reason"]} == recorded["stale"][0]
    assert "changed since run" in recorded["stale"][0]["reason"]
    start = await call(client, "devd/spin", {"uri": flow, "step": "start"})
    chained = await call(client, "devd/spin", {"uri": flow, "step": "double",
                                               "fromSpin": True})
    assert chained["ok"] and {r["name"]: r["summary"] for r in chained["artifacts"]}["y"] \
        == "20"
    assert chained["parents"][0].startswith("ChainFlow/devd-spin-")
    assert not chained.get("stale")
    work.write_text(source.replace("self.x = [1, 2, 3]", "self.x = [5]"))
    stale = await call(client, "devd/spin", {"uri": flow, "step": "double",
                                             "fromSpin": True})
    assert stale["stale"] and "since its last spin" in stale["stale"][0]["reason"]


@pytest.mark.asyncio
async def test_watch_and_spin_on_save(client: LanguageClient, daemon_project: Path) -> None:
    name = "save_flow.py"
    path = daemon_project / name
    source = (daemon_project / "linear_flow.py").read_text().replace("LinearFlow", "SaveFlow")
    path.write_text(source)
    run_flow(daemon_project, name)
    open_doc(client, daemon_project, name)
    first = await call(client, "devd/spin", {"uri": path.as_uri(), "step": "double"})
    assert first["ok"]
    client.devd_finished.clear()
    client.devd_state.clear()
    path.write_text(source.replace("sum(self.x) * self.alpha", "sum(self.x) * 7"))
    for _ in range(300):  # up to 30 s: watchdog and a spin on a loaded machine
        if any(n.get("reason") == "fileChanged" for n in client.devd_state):
            break
        await asyncio.sleep(0.1)
    notes = [n for n in client.devd_state if n.get("reason") == "fileChanged"]
    assert notes and notes[0]["file"] == str(path)
    client.text_document_did_save(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(path.as_uri())))
    for _ in range(300):  # up to 30 s: watchdog and a spin on a loaded machine
        if any(f["step"] == "double" for f in client.devd_finished):
            break
        await asyncio.sleep(0.1)
    respun = [f for f in client.devd_finished if f["step"] == "double"][-1]
    assert {r["name"]: r["summary"] for r in respun["artifacts"]}["y"] == "42"


@pytest.mark.asyncio
async def test_terminal_and_editor_share_one_warm_state(client: LanguageClient,
                                                        daemon_project: Path) -> None:
    await call(client, "devd/spin", {"uri": uri(daemon_project, "linear_flow.py"),
                                     "step": "double"})
    deadline = time.monotonic() + 30  # the child for the next spin is forked aside
    while not any(p["step"] == "double" for p in
                  (await call(client, "devd/status", {}))["prepared"]):
        assert time.monotonic() < deadline, "no child was prepared after the editor's spin"
        await asyncio.sleep(0.05)
    out = cli(daemon_project, "spin", "linear_flow.py", "double", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["timingsMs"]["load"] < 50  # parents were already warm in the daemon
    assert "child.idle" in data["timingsMs"]  # and it ran in the child the editor's spin left
    status = json.loads(cli(daemon_project, "status", "--json").stdout)
    assert any(s["step"] == "double" and s["flow"].endswith("linear_flow.py")
               for s in status["lastSpins"])
    importtime = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "devd.cli", "spin", "linear_flow.py",
         "double", "--json"], cwd=daemon_project, capture_output=True, text=True,
        timeout=60)
    assert importtime.returncode == 0
    imported = [line.split("|")[-1].strip() for line in importtime.stderr.splitlines()]
    assert "devd.cli.client" in imported
    assert not [m for m in imported if m.split(".")[0] in ("metaflow", "pygls", "cloudpickle")]


def _raw_exchange(path: str, payload: bytes) -> list[dict[str, Any]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    sock.sendall(payload)
    data = b""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(messages) < 2:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        while b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            messages.append(json.loads(rest[:length]))
            data = rest[length:]
    sock.close()
    return messages


def frame(obj: Any) -> bytes:
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_malformed_and_unknown_requests_get_errors(daemon_project: Path) -> None:
    cli(daemon_project, "daemon", "start", str(daemon_project))
    sock_path = daemon_paths(str(daemon_project)).socket
    replies = _raw_exchange(sock_path, frame(b"{not json") + frame(
        {"jsonrpc": "2.0", "id": 7, "method": "devd/noSuchMethod", "params": {}}))
    by_id = {m.get("id"): m for m in replies}
    assert by_id[7]["error"]["code"] == -32601
    assert any(m.get("error", {}).get("code") == -32700 for m in replies), replies
    status = json.loads(cli(daemon_project, "status", "--json").stdout)
    assert status["pid"] > 0  # still serving


def test_daemon_lifecycle_stale_files_idle_exit_and_tcp_token(daemon_project: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="dvl"))
    shutil.copy(daemon_project / "linear_flow.py", root / "linear_flow.py")
    paths = daemon_paths(str(root))
    out = cli(root, "daemon", "start", str(root))
    assert "daemon started" in out.stdout
    assert oct(os.stat(paths.directory).st_mode & 0o777) == "0o700"
    assert oct(os.stat(paths.socket).st_mode & 0o777) == "0o600"
    pid = int(Path(paths.pidfile).read_text())
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    assert os.path.exists(paths.socket)  # left behind by the killed daemon
    out = cli(root, "daemon", "status", str(root))
    assert "no daemon" in out.stdout and "stale" in out.stdout
    assert not os.path.exists(paths.socket)
    out = cli(root, "daemon", "start", str(root), "--idle-timeout", "1")
    assert "daemon started" in out.stdout
    for _ in range(100):
        if not os.path.exists(paths.socket):
            break
        time.sleep(0.1)
    assert not os.path.exists(paths.socket) and not os.path.exists(paths.pidfile)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = cli(root, "daemon", "start", str(root), "--tcp", str(port))
    assert "daemon started" in out.stdout
    token = json.loads(Path(paths.info).read_text())["tcp"]["token"]
    request = frame({"jsonrpc": "2.0", "id": 1, "method": "devd/status", "params": {}})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"TOKEN wrong\r\n" + request)
        assert sock.recv(1000) == b""  # closed without an answer
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"TOKEN {token}\r\n".encode() + request)
        data = b""
        while b"}" not in data:
            data += sock.recv(65536)
        assert b'"pid"' in data
    assert "daemon stopped" in cli(root, "daemon", "stop", str(root)).stdout


class _Scripts(HTMLParser):
    """The nonce of every <script> of a page, and the documents of its card frames."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.nonces: list[str | None] = []
        self.cards: list[str] = []
        self.csp = ""
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.nonces.append(found.get("nonce"))
        elif tag == "iframe" and found.get("srcdoc"):
            self.cards.append(found["srcdoc"] or "")
        elif tag == "meta" and found.get("http-equiv") == "Content-Security-Policy":
            self.csp = found.get("content") or ""


@pytest.mark.asyncio
async def test_card_preview_for_a_vscode_webview_carries_the_nonce_everywhere(
        client: LanguageClient, daemon_project: Path) -> None:
    from pygls.exceptions import JsonRpcInvalidParams

    flow = uri(daemon_project, "card_flow.py")
    nonce = "Tm9uY2VGb3JUaGVXZWJ2aWV3MDE="
    source = "https://*.vscode-cdn.net"
    card = await call(client, "devd/card", {
        "uri": flow, "step": "report", "spinIfMissing": True,
        "webview": {"nonce": nonce, "cspSource": source}})
    assert card["ok"] and set(card) == {"ok", "step", "preview", "assets"}  # a pane needs no more
    page = _Scripts(card["preview"])
    assert page.csp == (f"default-src 'none'; img-src data: {source}; "
                        "style-src 'unsafe-inline'; "
                        f"script-src 'nonce-{nonce}' 'unsafe-eval'; font-src data:; "
                        "frame-src about:")
    assert page.nonces == [nonce]  # the page's own script
    assert len(page.cards) == 2
    for document in page.cards:  # Metaflow's scripts and the live bridge, in each card
        scripts = _Scripts(document).nonces
        assert len(scripts) >= 3 and set(scripts) == {nonce}, scripts
    plain_page = await call(client, "devd/card", {"uri": flow, "step": "report"})
    # `cards` are the documents as rendered, for any use: no nonce there.
    assert len(plain_page["cards"]) == 2
    assert all("nonce=" not in c["html"] for c in plain_page["cards"])
    plain_scripts = _Scripts(plain_page["preview"])
    assert "script-src 'unsafe-inline' 'unsafe-eval'" in plain_scripts.csp
    assert plain_scripts.nonces == [None]
    assert all(set(_Scripts(d).nonces) == {None} for d in plain_scripts.cards)

    for webview in ({"nonce": "short"}, {"nonce": nonce + '"><script>'},
                    {"nonce": "x" * 300}, {"nonce": 1234567890123456789}, {},
                    {"nonce": nonce, "cspSource": "https://x; script-src *"}, "nonce",
                    {"nonce": nonce, "assets": "abc"}, {"nonce": nonce, "assets": ["x" * 65]},
                    {"nonce": nonce, "assets": ["a"] * 65}):
        with pytest.raises(JsonRpcInvalidParams):
            await client.protocol.send_request_async("devd/card", {
                "uri": flow, "step": "report", "webview": webview})


@pytest.mark.asyncio
async def test_run_and_resume_report_progress_on_the_clients_work_done_token(
        client: LanguageClient, daemon_project: Path) -> None:
    import re

    flow = uri(daemon_project, "linear_flow.py")
    client.progress_reports["editor-run-1"] = []  # the client made this token itself
    before = set(client.progress_reports)
    result = await call(client, "devd/run", {"uri": flow, "workDoneToken": "editor-run-1"})
    assert result["ok"] and result["runId"]
    reports = client.progress_reports["editor-run-1"]
    kinds = [r.kind for r in reports]
    assert kinds[0] == "begin" and kinds[-1] == "end" and kinds.count("begin") == 1
    steps = [r.message for r in reports if r.kind == "report"]
    assert steps and all(re.fullmatch(r"\d/3 steps \(\w+\)", m) for m in steps), steps
    assert steps[-1] == "3/3 steps (end)"
    assert set(client.progress_reports) == before  # no token of the server's own

    client.progress_reports[7] = []
    resumed = await call(client, "devd/resume", {"uri": flow, "step": "double",
                                                 "originRunId": result["runId"],
                                                 "workDoneToken": 7})
    assert resumed["ok"] and resumed["runId"] != result["runId"]
    kinds = [r.kind for r in client.progress_reports[7]]
    assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
    assert set(client.progress_reports) == before | {7}


@pytest.mark.asyncio
async def test_an_editor_can_leave_card_html_out_of_spin_results(daemon_project: Path) -> None:
    """initializationOptions.cardHtml false: spin results and spinFinished name the cards
    without their HTML (the pane takes the page from devd/card); other clients still get it."""
    editor = await start_client(daemon_project, {"cardHtml": False})
    try:
        flow = uri(daemon_project, "card_flow.py")
        result = await call(editor, "devd/spin", {"uri": flow, "step": "report"})
        assert result["ok"] and len(result["cards"]) == 2
        assert all("html" not in c and c["type"] for c in result["cards"]), result["cards"]
        for _ in range(100):
            if editor.devd_finished:
                break
            await asyncio.sleep(0.05)
        assert editor.devd_finished and all("html" not in c for c in
                                            editor.devd_finished[-1]["cards"])
        card = await call(editor, "devd/card", {"uri": flow, "step": "report"})
        assert all(c["html"].startswith("<!DOCTYPE") or "<html" in c["html"][:500]
                   for c in card["cards"])
        out = cli(daemon_project, "spin", "card_flow.py", "report", "--json")
        assert all(c["html"] for c in json.loads(out.stdout)["cards"])
    finally:
        await editor.shutdown_session()
        await editor.stop()


@pytest.mark.asyncio
async def test_a_spin_from_the_pane_brings_its_preview_with_spin_finished(
        daemon_project: Path) -> None:
    """`webview` on devd/spin: every spinFinished to that client carries the pane's page
    (nonce, scripts it holds left out, the pane's version); `webview: null` stops it."""
    from pygls.exceptions import JsonRpcInvalidParams

    editor = await start_client(daemon_project, {"cardHtml": False})
    flow = uri(daemon_project, "card_flow.py")
    nonce = "UHVzaGVkUHJldmlld05vbmNlMDE="

    async def finished(count: int) -> dict[str, Any]:
        for _ in range(200):
            if len(editor.devd_finished) >= count:
                return editor.devd_finished[count - 1]
            await asyncio.sleep(0.05)
        raise AssertionError("no devd/spinFinished")

    try:
        webview = {"nonce": nonce, "cspSource": "https://*.vscode-cdn.net", "version": 7}
        result = await call(editor, "devd/spin", {"uri": flow, "step": "report",
                                                  "webview": webview})
        assert result["ok"] and "preview" not in result  # the notification has it
        first = (await finished(1))["preview"]
        assert first["version"] == 7 and len(first["assets"]) == 1
        assert f"nonce-{nonce}" in first["html"] and "report" in first["html"]
        full = len(first["html"])
        # The pane holds the card renderer now: the next page leaves it out.
        webview = {**webview, "assets": first["assets"], "version": 8}
        await call(editor, "devd/spin", {"uri": flow, "step": "report", "webview": webview})
        second = (await finished(2))["preview"]
        assert second["version"] == 8 and second["assets"] == []
        assert len(second["html"]) < full - 500_000
        assert first["assets"][0] in second["html"]  # named: the page puts it back
        # A spin from a terminal reaches the pane the same way.
        cli(daemon_project, "spin", "card_flow.py", "report")
        assert (await finished(3))["preview"]["version"] == 8
        # The pane closed: no more pages rendered for it.
        await call(editor, "devd/spin", {"uri": flow, "step": "report", "webview": None})
        assert "preview" not in await finished(4)
        with pytest.raises(JsonRpcInvalidParams):
            await editor.protocol.send_request_async("devd/spin", {
                "uri": flow, "step": "report", "webview": {"nonce": nonce, "version": "x"}})
    finally:
        await editor.shutdown_session()
        await editor.stop()


def _zombie_or_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "X"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def _prepared_pid(lsp: LanguageClient, flow: Path, step: str) -> int:
    deadline = time.monotonic() + 30  # the child for the next spin is forked aside
    while True:
        for p in (await call(lsp, "devd/status", {}))["prepared"]:
            if p["step"] == step and p["flow"] == str(flow):
                return p["pid"]
        assert time.monotonic() < deadline, "no child was prepared"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_saves_are_debounced_and_a_deleted_flow_is_released(
        client: LanguageClient, daemon_project: Path) -> None:
    path = daemon_project / "burst_flow.py"
    source = (daemon_project / "linear_flow.py").read_text().replace("LinearFlow", "BurstFlow")
    path.write_text(source)
    run_flow(daemon_project, path.name)
    first = await call(client, "devd/spin", {"uri": path.as_uri(), "step": "double"})
    assert first["ok"], first
    pid = await _prepared_pid(client, path, "double")
    client.devd_state.clear()
    started = time.monotonic()
    for i in range(100):  # a script (or a formatter) rewriting the file: 100 saves in 1 s
        path.write_text(source + f"\n# save {i}\n")
        await asyncio.sleep(0.01)
    assert time.monotonic() - started < 3
    await asyncio.sleep(1.5)
    changed = [n for n in client.devd_state
               if n.get("reason") == "fileChanged" and n.get("file") == str(path)]
    assert 1 <= len(changed) <= 8, len(changed)  # was 201 (and 202 diagnostics)
    assert "# save 99" in path.read_text()
    path.unlink()
    deadline = time.monotonic() + 30
    while not any(n.get("reason") == "fileDeleted" and n.get("file") == str(path)
                  for n in client.devd_state):
        assert time.monotonic() < deadline, client.devd_state[-5:]
        await asyncio.sleep(0.05)
    status = await call(client, "devd/status", {})
    assert str(path) not in status["flows"]
    assert all(p["flow"] != str(path) for p in status["prepared"])
    deadline = time.monotonic() + 10
    while _zombie_or_alive(pid):  # the prepared child was killed and reaped
        assert time.monotonic() < deadline, f"prepared child {pid} is still there"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_a_killed_prepared_child_is_reaped(client: LanguageClient,
                                                 daemon_project: Path) -> None:
    flow = daemon_project / "linear_flow.py"
    result = await call(client, "devd/spin", {"uri": flow.as_uri(), "step": "double"})
    assert result["ok"], result
    pid = await _prepared_pid(client, flow, "double")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _zombie_or_alive(pid):  # not left a zombie until the next spin
        assert time.monotonic() < deadline, f"killed prepared child {pid} is a zombie"
        await asyncio.sleep(0.05)
    status = await call(client, "devd/status", {})
    assert all(p["pid"] != pid for p in status["prepared"])
    again = await call(client, "devd/spin", {"uri": flow.as_uri(), "step": "double"})
    assert again["ok"], again


@pytest.mark.asyncio
async def test_a_started_spin_that_is_refused_says_so(client: LanguageClient,
                                                      daemon_project: Path) -> None:
    """A spin shown as started (spinStarted) that ends with no result (a flow never run)
    says so (spinRefused), so an editor stops showing it in flight (issue 19, item 4)."""
    name = "never_run_flow.py"
    (daemon_project / name).write_text(
        "from metaflow import FlowSpec, step\n\n\nclass NeverRunFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    NeverRunFlow()\n")
    answer = await call(client, "devd/spin", {"uri": uri(daemon_project, name), "step": "end"})
    assert answer["ok"] is False and "no run of NeverRunFlow" in answer["error"]["message"]
    await asyncio.sleep(0.5)
    # the spin's own events (writing the file above also sends a fileChanged, in any order)
    mine = [s for s in client.devd_state if s.get("flow") == str(daemon_project / name)
            and s["reason"] in ("spinStarted", "spinRefused")]
    reasons = [s["reason"] for s in mine]
    assert reasons[-2:] == ["spinStarted", "spinRefused"], mine
    assert mine[-1]["step"] == "end" and "no run of NeverRunFlow" in mine[-1]["error"]
