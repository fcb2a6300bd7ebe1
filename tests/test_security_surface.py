"""What the owner's devd touches on the file system for a client: `devd card`'s pages, the
paths an MCP agent names, the documents an editor opens (issue 22).

The second user is real (tests/otheruser.py): it plants links and files where the owner's
devd writes or reads, and the owner's devd must neither write through them nor run them.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from devd.common.project import daemon_paths
from tests.conftest import FLOWS, daemon_environment
from tests.otheruser import attacker, finish
from tests.wirehelp import Raw, cli, make_project, request


@pytest.fixture(scope="module")
def surface_project() -> Iterator[Path]:
    """A project of its own (linear_flow.py, run once) and a runtime dir for its daemons."""
    with daemon_environment("dvss"):
        yield make_project(FLOWS, ("linear_flow.py",), "dvss", run=("linear_flow.py",))


def shared_dir() -> Path:
    """A directory every user may create entries in, like /tmp (mode 1777)."""
    path = Path(tempfile.mkdtemp(prefix="dvsh"))
    path.chmod(0o1777)
    return path


def as_other(user: tuple[int, int], code: str, *args: str) -> str:
    """Run ``code`` as the other user to its end; what it printed."""
    proc = attacker(user, "drop()\n" + textwrap.dedent(code), *args)
    out = finish(proc, stop=False)
    assert proc.returncode == 0, (out, proc.stderr.read() if proc.stderr else "")
    return out


def card_env(tmp: Path) -> dict[str, str]:
    """`devd card` with the temp directory ``tmp`` and no runtime dir named: the default."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEVD_RUNTIME_DIR", "XDG_RUNTIME_DIR")}
    env["TMPDIR"] = str(tmp)
    return env


# -- item 3: `devd card`'s default output ---------------------------------------------------

def test_devd_card_never_writes_through_what_another_user_planted(
        other_user: tuple[int, int], surface_project: Path, tmp_path: Path) -> None:
    """In the shared temp dir, the other user made devd's old previews folder: a symlink
    to the owner's ~/.profile and a 0666 file under the names `devd card` would write.
    The owner's pages go to their own 0700 directory instead; nothing planted is touched."""
    tmp = shared_dir()
    profile = tmp_path / "profile"
    profile.write_text("export PATH=$HOME/bin:$PATH\n")
    as_other(other_user, """
        folder = os.path.join(sys.argv[3], "devd-previews")
        os.mkdir(folder)
        os.chmod(folder, 0o777)
        os.symlink(sys.argv[4], os.path.join(folder, "linear_flow-double.html"))
        trap = os.path.join(folder, "linear_flow-start.html")
        open(trap, "w").close()
        os.chmod(trap, 0o666)
    """, str(tmp), str(profile))
    env = card_env(tmp)
    for step in ("double", "start"):
        out = cli(surface_project, "card", "linear_flow.py", step, env=env)
        assert out.returncode == 0, out.stderr
        assert profile.read_text() == "export PATH=$HOME/bin:$PATH\n", "wrote through a link"
        assert (tmp / "devd-previews" / "linear_flow-start.html").read_text() == "", \
            "wrote into a file another user can read"
        page = Path(out.stdout.strip())
        assert page.name == f"linear_flow-{step}.html"
        assert page.parent == tmp / f"devd-{os.getuid()}" / "previews"
        assert "<!DOCTYPE html>" in page.read_text()
        for path, mode in ((page, 0o600), (page.parent, 0o700), (page.parent.parent, 0o700)):
            st = os.lstat(path)
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.getuid(), mode), path
    assert sorted(os.listdir(page.parent)) == ["linear_flow-double.html",
                                               "linear_flow-start.html"]  # no temp file left


def test_devd_card_refuses_a_previews_directory_another_user_made(
        other_user: tuple[int, int], surface_project: Path) -> None:
    """The other user made the owner's per-user directory first: one line, nothing written."""
    tmp = shared_dir()
    mine = tmp / f"devd-{os.getuid()}"
    as_other(other_user, """
        os.mkdir(sys.argv[3])
        os.chmod(sys.argv[3], 0o777)
        os.mkdir(os.path.join(sys.argv[3], "previews"), 0o777)
    """, str(mine))
    out = cli(surface_project, "card", "linear_flow.py", "double", env=card_env(tmp))
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert out.stderr.count("\n") == 1 and "belongs to another user" in out.stderr
    assert os.listdir(mine / "previews") == []


# -- item 4: MCP paths stay in the project --------------------------------------------------

def relative(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


@contextlib.asynccontextmanager
async def mcp_session(root: Path, env: dict[str, str]) -> AsyncIterator[Any]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "devd.cli", "mcp"],
                                   cwd=str(root), env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


@pytest.mark.asyncio
async def test_mcp_tools_refuse_paths_outside_the_project(
        other_user: tuple[int, int], surface_project: Path) -> None:
    """A prompt-injected agent names a flow another user wrote (by `..`, by an absolute
    path, through a symlink in the project) or a system file: each call is refused in one
    line, nothing is imported, and no daemon starts anywhere."""
    drop_zone = shared_dir()
    marker = drop_zone / "ran-as-owner"
    as_other(other_user, """
        folder = os.path.join(sys.argv[3], "x")
        os.mkdir(folder, 0o755)
        with open(os.path.join(folder, "evil.py"), "w") as fh:
            fh.write("import pathlib\\npathlib.Path(%r).write_text('x')\\n"
                     "from metaflow import FlowSpec, step\\n"
                     "class EvilFlow(FlowSpec):\\n"
                     "    @step\\n"
                     "    def start(self):\\n"
                     "        self.next(self.end)\\n"
                     "    @step\\n"
                     "    def end(self):\\n"
                     "        pass\\n" % sys.argv[4])
        os.chmod(os.path.join(folder, "evil.py"), 0o644)
    """, str(drop_zone), str(marker))
    evil = drop_zone / "x" / "evil.py"
    link = surface_project / "linked_flow.py"
    link.symlink_to(evil)
    runtime = Path(tempfile.mkdtemp(prefix="dvsm"))
    env = {**os.environ, "DEVD_RUNTIME_DIR": str(runtime)}
    upward = relative(evil, surface_project)  # ../../<drop zone>/x/evil.py
    calls = [("spin", {"flow": upward, "step": "start"}),
             ("spin", {"flow": str(evil), "step": "start"}),
             ("spin", {"flow": "linked_flow.py", "step": "start"}),
             ("spin", {"flow": "/etc/passwd", "step": "start"}),
             ("spin", {"flow": "/proc/self/environ", "step": "start"}),
             ("card", {"flow": "../" * 8 + str(evil).lstrip("/"), "step": "start"}),
             ("artifacts", {"flow": "/etc/passwd", "step": "start"}),
             ("run", {"flow": upward}),
             ("status", {"flow_or_dir": "/proc/self"})]
    try:
        async with mcp_session(surface_project, env) as client:
            for tool, arguments in calls:
                answer = await client.call_tool(tool, arguments)
                text = "\n".join(b.text for b in answer.content if b.type == "text")
                assert answer.is_error, (tool, arguments, text)
                assert text.startswith("devd: ") and "\n" not in text, text
                assert "outside the project" in text, text
    finally:
        link.unlink()
    assert not marker.exists(), "a flow outside the project was imported"
    assert os.listdir(runtime) == [], "a daemon was started for a path outside the project"


# -- items 6 and 11: documents the daemon reads and watches ---------------------------------

@pytest.fixture(scope="module")
def served(surface_project: Path) -> Iterator[Path]:
    out = cli(surface_project, "daemon", "start", str(surface_project))
    assert "daemon started" in out.stdout, out.stderr
    yield surface_project
    cli(surface_project, "daemon", "stop", str(surface_project))


def sock_of(root: Path) -> str:
    return daemon_paths(str(root)).socket


def position_of(path: Path, fragment: str) -> dict[str, int]:
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if fragment in text)
    return {"line": line, "character": lines[line].index(fragment) + 5}


def test_hover_and_completion_never_read_a_document_that_was_not_opened(served: Path) -> None:
    """A FIFO in the project froze the daemon's event loop for every client; a missing file
    answered -32603 with a traceback. Documents never opened get null, and opened ones still
    get their hover."""
    fifo = served / "pipe_flow.py"
    os.mkfifo(fifo)
    flow = served / "linear_flow.py"
    at = position_of(flow, "self.y = sum")
    try:
        with Raw(sock_of(served)) as conn, Raw(sock_of(served)) as other:
            for i, name in enumerate(("pipe_flow.py", "missing_flow.py", "linear_flow.py")):
                for j, method in enumerate(("textDocument/hover", "textDocument/completion")):
                    msg_id = 10 * i + j + 1
                    conn.send(request(msg_id, method, {
                        "textDocument": {"uri": (served / name).as_uri()}, "position": at}))
                    answer = conn.answer(msg_id, timeout=10)
                    assert answer.get("result", "no result") is None, (name, method, answer)
            other.send(request(99, "devd/status", {}))  # the loop still serves everyone
            assert other.answer(99, timeout=10)["result"]["pid"] > 0
            conn.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
                "textDocument": {"uri": flow.as_uri(), "languageId": "python", "version": 1,
                                 "text": flow.read_text()}}})
            conn.send(request(50, "textDocument/hover", {
                "textDocument": {"uri": flow.as_uri()}, "position": at}))
            hover = conn.answer(50)["result"]
            assert hover is not None and "self.y" in hover["contents"]["value"], hover
    finally:  # a daemon stuck opening the FIFO for reading is let go
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        fifo.unlink()


def test_documents_outside_the_project_are_not_watched_and_hosts_are_refused(
        served: Path, tmp_path: Path) -> None:
    """/etc/passwd opened in the editor joined the daemon's watched flows, and so did a flow
    of another directory; `file://otherhost/...` was read as a local path."""
    outside = tmp_path / "other_flow.py"
    outside.write_text((served / "linear_flow.py").read_text())
    link = served / "passwd_link.py"
    link.symlink_to("/etc/passwd")
    refused = [Path("/etc/passwd"), outside, link]
    try:
        with Raw(sock_of(served)) as conn:
            for i, path in enumerate(refused, start=1):
                conn.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
                    "textDocument": {"uri": path.as_uri(), "languageId": "python",
                                     "version": 1, "text": "x = 1\n"}}})
                conn.send({"jsonrpc": "2.0", "method": "textDocument/didSave", "params": {
                    "textDocument": {"uri": path.as_uri()}}})
                conn.send(request(i, "textDocument/codeLens",
                                  {"textDocument": {"uri": path.as_uri()}}))
                assert conn.answer(i)["result"] == [], path
            remote = "file://otherhost" + str(served / "linear_flow.py")
            conn.send(request(20, "textDocument/hover", {
                "textDocument": {"uri": remote}, "position": {"line": 0, "character": 0}}))
            conn.send(request(21, "devd/spin", {"uri": remote, "step": "double"}))
            for msg_id in (20, 21):
                error = conn.answer(msg_id)["error"]
                assert error["code"] == -32602 and "otherhost" in error["message"], error
            local = "file://localhost" + str(served / "linear_flow.py")
            conn.send(request(22, "textDocument/codeLens", {"textDocument": {"uri": local}}))
            assert conn.answer(22)["result"], "file://localhost/ is this machine"
            conn.send(request(23, "devd/status", {}))
            flows = conn.answer(23)["result"]["flows"]
    finally:
        link.unlink()
    assert flows == [str(served / "linear_flow.py")], flows
    assert not any(json.dumps(str(p)) in json.dumps(flows) for p in refused)


# -- item 12: the card page's WebRTC guard --------------------------------------------------

from tests.test_cards import (  # noqa: E402 - Chromium and its helpers, for these tests only
    FLAVOURS,
    StunTrap,
    Watched,
    browser,  # noqa: F401 - the fixture
    card_file,
)

# What the nested documents run: WebRTC to the test's loopback "STUN server". The card's
# own scripts carry the page's nonce in a webview page; the payload reuses it (`N`).
RTC = ("try { var pc = new RTCPeerConnection({iceServers: [{urls: 'stun:127.0.0.1:PORT'}]});"
       " pc.createDataChannel('x'); pc.createOffer().then(function (o) {"
       " return pc.setLocalDescription(o); }); } catch (e) { }")
PAYLOAD = "'<script nonce=\"' + N + '\">' + RTC + '<\\/script>'"
QUOTED = "(" + PAYLOAD + ").replace(/\"/g, '&quot;')"
# The guard's clean-up made no-ops, and what it read replaced, before the card frames.
DISARM = """
Element.prototype.remove = function () {};
Element.prototype.removeAttribute = function () {};
Element.prototype.matches = function () { return false; };
Element.prototype.querySelectorAll = function () { return []; };
Object.defineProperty(MutationRecord.prototype, 'addedNodes', {get: function () { return []; }});
String.prototype.indexOf = function () { return -1; };
"""
ATTACKS = {
    # the card: a srcdoc frame once remove/removeAttribute do nothing
    "methods": ("", DISARM + """
        var g = document.createElement('iframe'); g.srcdoc = PAYLOAD;
        document.body.appendChild(g);"""),
    "attributes": ("", DISARM + """
        var a = document.createElement('iframe'); a.setAttribute('srcdoc', PAYLOAD);
        document.body.appendChild(a);
        var b = document.createElement('div'); document.body.appendChild(b);
        b.innerHTML = '<iframe SRCDOC="' + QUOTED + '"></iframe>';
        b.insertAdjacentHTML('beforeend', '<iframe srcdoc="' + QUOTED + '"></iframe>');"""),
    # no string at all: a frame of the card's own markup, cloned into the page
    "template": ("<template id='t'><iframe srcdoc='INNER'></iframe></template>", DISARM + """
        document.body.appendChild(document.getElementById('t').content.cloneNode(true));"""),
    # closed declarative shadow roots hide their frames from every script
    "shadow": ("<div><template shadowrootmode='closed'><iframe srcdoc='INNER'></iframe>"
               "</template></div>", """
        var h = document.createElement('div'); document.body.appendChild(h);
        h.setHTMLUnsafe('<div><template shadowrootmode="closed"><iframe srcdoc="' + QUOTED
                        + '"></iframe></template></div>');"""),
    # the card's own frame navigated to a document of its making (the page's frame-src)
    "navigate": ("", """
        setTimeout(function () {
          location.href = 'data:text/html,' + encodeURIComponent(PAYLOAD); }, 1000);"""),
}


def attack_card(name: str, port: int) -> str:
    from markupsafe import escape

    markup, script = ATTACKS[name]
    rtc = RTC.replace("PORT", str(port))
    markup = markup.replace("INNER", str(escape(f"<script>{rtc}</script>")))
    script = (script.replace("QUOTED", QUOTED).replace("PAYLOAD", PAYLOAD)
              .replace("RTC", json.dumps(rtc)))
    return ("<!DOCTYPE html><html><head><title>rtc</title></head><body><p id='tried'>no</p>"
            f"{markup}<script>var N = (document.currentScript || {{}}).nonce || '';"
            f"try {{ {script} }} catch (e) {{ document.title = String(e); }}"
            "document.getElementById('tried').textContent = 'tried';</script></body></html>")


def preview_with(card: str) -> Any:
    """A spin's result holding one card, as the daemon renders it (with devd's guard)."""
    from devd.common.cardpage import with_live_bridge
    from devd.core.result import SpinResult

    return SpinResult(flow="RtcFlow", step="s", ok=True, artifacts={}, artifact_rows=[],
                      error=None, stdout="", stderr="", next_steps=[], duration_s=0.1,
                      parents=[], origin_run_id="1", cards=[with_live_bridge(card)],
                      card_info=[{"id": "rtc", "type": "blank"}], recorded_task=None,
                      artifact_hashes={})


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_card_cannot_disarm_the_webrtc_guard(browser: Any, tmp_path: Path,  # noqa: F811
                                               attack: str) -> None:
    """The card replaces what the guard calls, hides a srcdoc frame from it, or navigates
    itself away from it, and tries WebRTC from a window the guard never sealed: no STUN
    packet leaves, in either page."""
    from markupsafe import escape

    from devd.core.preview import render_preview

    trap = StunTrap("bare", *(flavour for flavour, _ in FLAVOURS))
    try:
        # The probe works: in a sandboxed frame of a page without devd's policy or guard,
        # the card reaches the port.
        bare = Watched(browser)
        card = attack_card(attack, trap.port("bare"))
        bare.page.goto(card_file(tmp_path, "bare", "<!DOCTYPE html><iframe sandbox="
                                 f"'allow-scripts' srcdoc='{escape(card)}'></iframe>"))
        assert trap.packets(5, until_any=True)["bare"] > 0, \
            "no STUN packet from the unguarded card"
        bare.close()
        pages = []
        for flavour, options in FLAVOURS:
            watched = Watched(browser)
            card = attack_card(attack, trap.port(flavour))
            watched.page.goto(card_file(tmp_path, flavour,
                                        render_preview(preview_with(card), **options)))
            frame = watched.page.frame_locator('iframe[data-card-id="rtc"]')
            # the card's script ran on (seen at once: "navigate" leaves the page after 1 s)
            frame.locator("#tried", has_text="tried").wait_for()
            pages.append(watched)
        got = trap.packets(4)
        assert not got["browser"] and not got["webview"], f"the card opened WebRTC: {got}"
        for watched in pages:
            watched.close()
    finally:
        trap.close()
