"""JSON-RPC conformance of the daemon, and clients that never send `initialize` (the CLI):
a real daemon process, raw bytes on its real socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devd.common.project import daemon_paths
from tests.conftest import daemon_environment
from tests.wirehelp import Raw, cli, frame, log_text, make_project, request


@pytest.fixture(scope="module")
def proto_project(project: Path) -> Any:
    with daemon_environment("dvq"):
        root = make_project(project, ("linear_flow.py", "slow_flow.py"), "dvq",
                            run=("linear_flow.py", "slow_flow.py"))
        out = cli(root, "daemon", "start", str(root))
        assert "daemon started" in out.stdout, out.stderr
        yield root
        cli(root, "daemon", "stop", str(root))


def sock_of(root: Path) -> str:
    return daemon_paths(str(root)).socket


def log_of(root: Path) -> str:
    return log_text(daemon_paths(str(root)).log)


# -- item 5: clients that never send `initialize` ------------------------------------------

def test_cli_run_and_resume_go_through_a_running_daemon(proto_project: Path) -> None:
    source = (proto_project / "linear_flow.py").read_text().replace("LinearFlow", "ViaDaemonFlow")
    (proto_project / "via_daemon_flow.py").write_text(source)
    out = cli(proto_project, "run", "via_daemon_flow.py", "--alpha", "4")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    run_id = out.stdout.strip().splitlines()[-1].split("run id ")[-1]
    status = json.loads(cli(proto_project, "status", "--json").stdout)
    assert str(proto_project / "via_daemon_flow.py") in status["flows"]  # the daemon ran it
    out = cli(proto_project, "resume", "via_daemon_flow.py", "double", "--origin-run-id", run_id)
    assert out.returncode == 0, out.stderr
    assert "resume finished: run id" in out.stdout


def test_every_method_answers_a_client_that_never_initialized(proto_project: Path) -> None:
    flow = (proto_project / "linear_flow.py").as_uri()
    source = (proto_project / "linear_flow.py").read_text()
    y_line = next(i for i, line in enumerate(source.splitlines()) if "self.y = sum" in line)
    y_col = source.splitlines()[y_line].index("self.y") + 5
    doc = {"textDocument": {"uri": flow}}
    calls = [
        ("devd/status", {}),
        ("devd/spin", {"uri": flow, "step": "double"}),
        ("devd/card", {"uri": flow, "step": "double"}),
        ("devd/artifacts", {"uri": flow, "step": "double", "name": "x"}),
        ("devd/cancel", {"target": "nothing-runs"}),
        ("textDocument/codeLens", doc),
        ("textDocument/hover", {**doc, "position": {"line": y_line, "character": y_col}}),
        ("textDocument/completion", {**doc, "position": {"line": y_line, "character": y_col}}),
        ("shutdown", None),
    ]
    with Raw(sock_of(proto_project)) as conn:
        conn.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
            "textDocument": {"uri": flow, "languageId": "python", "version": 1,
                             "text": source}}})
        for i, (method, params) in enumerate(calls, start=1):
            conn.send(request(i, method, params))
            answer = conn.answer(i)
            assert "error" not in answer, (method, answer)
            if method == "devd/spin":
                assert answer["result"]["ok"] is True
            if method == "devd/artifacts":
                assert answer["result"]["value"]["repr"] == "[1, 2, 3]"
            if method == "textDocument/hover":
                assert "`int`" in answer["result"]["contents"]["value"]
            if method == "textDocument/codeLens":
                assert any(lens["command"]["title"] == "▶ Spin" for lens in answer["result"])


def test_every_answer_and_notification_is_exactly_its_model(proto_project: Path) -> None:
    """What the daemon sends is what devd/lsp/models.py says (and so the extension's
    generated TypeScript): read into the model and written back, each message is unchanged
    (no key more or missing, none of another type). Errors have the one shape."""
    from devd.lsp import models

    wire = models.shared_converter()
    flow = (proto_project / "linear_flow.py").as_uri()
    calls = [
        ("devd/status", {}),
        ("devd/card", {"uri": flow, "step": "end"}),  # not spun yet: ok false
        ("devd/spin", {"uri": flow, "step": "double"}),
        ("devd/spin", {"uri": flow, "step": "nope"}),  # cannot start
        ("devd/card", {"uri": flow, "step": "double"}),
        ("devd/artifacts", {"uri": flow, "step": "double", "name": "y"}),
        ("devd/artifacts", {"uri": flow, "step": "double", "name": "nope"}),
        ("devd/cancel", {}),
        ("devd/run", {"uri": (proto_project / "missing_flow.py").as_uri()}),
    ]
    logs: list[dict[str, Any]] = []
    with Raw(sock_of(proto_project)) as conn:
        for i, (method, params) in enumerate(calls, start=1):
            conn.send(request(i, method, params))
            while True:
                message = conn.read(30)
                assert message is not None
                if message.get("method") == "devd/log":
                    logs.append(message["params"])
                elif "method" not in message and message.get("id") == i:
                    break
            assert "error" not in message, (method, message)
            answer = message["result"]
            model = models.REQUESTS[method][1]
            assert wire.unstructure(wire.structure(answer, model)) == answer, (method, answer)
            if answer.get("ok") is False:
                assert set(answer["error"]) <= {"type", "message", "file", "line",
                                                 "traceback"}, answer
                assert answer["error"]["type"] == "devd.BadRequest", answer
                assert "\n" not in answer["error"]["message"], answer
    assert logs and all(wire.unstructure(wire.structure(p, models.LogParams)) == p
                        for p in logs), logs


FAKE_DAEMON = textwrap.dedent("""
    import os, socket, struct, sys
    path, mode = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    os.chmod(os.path.dirname(path), 0o700)
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()
    print("ready", flush=True)
    conn, _ = server.accept()
    conn.recv(65536)
    if mode == "error":
        body = (b'{"jsonrpc": "2.0", "id": 1, '
                b'"error": {"code": -32603, "message": "boom\\\\nline two"}}')
        conn.sendall(b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)
    elif mode == "garbage":
        conn.sendall(b"Content-Length: 5\\r\\n\\r\\nnope!")
    elif mode == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    server.close()
    os.unlink(path)
""")


def start_fake(path: str, mode: str) -> subprocess.Popen[str]:
    fake = subprocess.Popen([sys.executable, "-c", FAKE_DAEMON, path, mode],
                            stdout=subprocess.PIPE, text=True)
    assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
    return fake


@pytest.mark.parametrize("mode,message", [
    ("close", "closed the connection before answering"),
    ("reset", "closed the connection before answering"),
    ("error", "the daemon answered error -32603: boom"),
    ("garbage", "sent a message devd cannot read"),
])
def test_a_failing_daemon_is_one_line_not_a_traceback(tmp_path: Path, mode: str,
                                                      message: str) -> None:
    """Whatever the daemon does (closes, resets, answers an error or garbage), the CLI
    prints one line and exits 3."""
    root = Path(tempfile.mkdtemp(prefix="dvf"))
    (root / "flow.py").write_text("")
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "DEVD_RUNTIME_DIR": str(runtime)}
    path = str(runtime / os.path.basename(daemon_paths(str(root)).directory) / "sock")
    for args in (("status", str(root)), ("spin", str(root / "flow.py"), "start")):
        fake = start_fake(path, mode)
        try:
            out = cli(root, *args, env=env, timeout=60)
            fake.wait(10)
        finally:
            fake.kill()
            fake.wait()
        assert out.returncode == 3, (args, out.stdout, out.stderr)
        assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_a_daemon_killed_mid_spin_is_one_line(proto_project: Path) -> None:
    root = make_project(proto_project, ("slow_flow.py",), "dvk", run=("slow_flow.py",))
    (root / "nap.py").write_text("ARTIFACTS = {'seconds': 8}\n")
    env = {**os.environ, "DEVD_RUNTIME_DIR": tempfile.mkdtemp(prefix="dvk")}
    assert "daemon started" in cli(root, "daemon", "start", str(root), env=env).stdout
    directory = os.path.join(env["DEVD_RUNTIME_DIR"],
                             os.path.basename(daemon_paths(str(root)).directory))
    pid = int(Path(directory, "pid").read_text())
    spin = subprocess.Popen([sys.executable, "-m", "devd.cli", "spin", "slow_flow.py", "nap",
                             "--artifacts-module", "nap.py"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert spin.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "napping" not in spin.stdout.readline():
        pass
    os.kill(pid, signal.SIGKILL)
    _, err = spin.communicate(timeout=30)
    assert spin.returncode == 3, err
    assert err.count("\n") == 1 and "closed the connection before answering" in err, err
    assert "Traceback" not in err


# -- item 10: JSON-RPC conformance ---------------------------------------------------------

def test_a_request_without_params_is_answered_with_its_own_id(proto_project: Path) -> None:
    with Raw(sock_of(proto_project)) as conn:
        conn.send(request(41, "devd/status"))
        answer = conn.read()
        assert answer["id"] == 41 and answer["result"]["pid"] > 0, answer
        conn.send(request("s-2", "devd/cancel"))
        assert conn.answer("s-2")["result"] == {"cancelled": []}
        conn.send(request(43, "textDocument/hover"))  # LSP requires params here
        answer = conn.answer(43)
        assert answer["error"]["code"] == -32602 and "params" in answer["error"]["message"]
        conn.send(request(44, "shutdown"))
        assert conn.answer(44)["result"] is None
        conn.send(request(45, "devd/status"))  # after shutdown: an error, still answered
        assert conn.answer(45)["error"]["code"] == -32600


@pytest.mark.parametrize("method,params,field", [
    ("devd/spin", {"uri": 5, "step": "double"}, "'uri'"),
    ("devd/spin", {"uri": "file:///x.py", "step": 3}, "'step'"),
    ("devd/spin", {"uri": "file:///x.py", "line": "4"}, "'line'"),
    ("devd/spin", {"uri": "file:///x.py", "persist": "yes"}, "'persist'"),
    ("devd/spin", {"uri": "file:///x.py", "config": {"cfg": 1}}, "'config["),
    ("devd/spin", [1, 2], "params must be an object"),
    ("devd/spin", "flow.py", "params must be an object or an array"),
    ("devd/run", {"uri": "file:///x.py", "args": "--alpha 3"}, "'args'"),
    ("devd/run", {"uri": "file:///x.py", "args": ["--alpha", 3]}, "'args[1]'"),
    ("devd/resume", {"uri": ["a"]}, "'uri'"),
    ("devd/card", {"uri": "file:///x.py", "step": {"a": 1}}, "'step'"),
    ("devd/artifacts", {"uri": "file:///x.py", "step": "s", "name": 3}, "'name'"),
    ("devd/cancel", {"target": 7}, "'target'"),
    ("devd/spin", {}, "needs 'uri'"),
    ("textDocument/hover", {"textDocument": {"uri": "file:///x.py"},
                            "position": {"line": "a", "character": 2}}, "'position.line'"),
    ("textDocument/codeLens", {"textDocument": 5}, "'textDocument"),
])
def test_wrong_typed_params_are_invalid_params_naming_the_field(
        proto_project: Path, method: str, params: Any, field: str) -> None:
    with Raw(sock_of(proto_project)) as conn:
        conn.send(request(9, method, params))
        answer = conn.answer(9)
    assert answer["error"]["code"] == -32602, answer
    assert field in answer["error"]["message"], answer
    assert "data" not in answer["error"]  # no traceback: the client's mistake, said plainly


def test_invalid_envelopes_are_answered_and_the_daemon_keeps_serving(proto_project: Path
                                                                     ) -> None:
    with Raw(sock_of(proto_project)) as conn:
        conn.send(frame(b"{not json"))
        assert conn.read()["error"]["code"] == -32700
        conn.send(frame(b"[1, 2]"))
        assert conn.read()["error"]["code"] == -32600
        conn.send({"jsonrpc": "1.0", "id": 3, "method": "devd/status"})
        assert conn.answer(3)["error"]["code"] == -32600
        conn.send({"jsonrpc": "2.0", "id": 4, "method": 12})
        assert conn.answer(4)["error"]["code"] == -32600
        conn.send({"jsonrpc": "2.0", "id": [5], "method": "devd/status"})
        assert conn.read()["error"]["code"] == -32600
        conn.send(request(6, "devd/noSuchMethod", {}))
        assert conn.answer(6)["error"]["code"] == -32601
        conn.send(b"\r\n" + frame(request(7, "devd/status")))  # a stray blank line is fine
        assert conn.answer(7)["result"]["pid"] > 0


def test_a_1mb_header_line_is_refused_without_an_unhandled_exception(proto_project: Path
                                                                      ) -> None:
    with Raw(sock_of(proto_project)) as conn:
        conn.send(b"X-Junk: " + b"x" * (1 << 20) + b"\r\n\r\n")
        answer = conn.read()
        assert answer is not None and answer["error"]["code"] == -32600, answer
        assert "header line longer than" in answer["error"]["message"]
        assert conn.read() is None  # then the daemon closes this connection
    with Raw(sock_of(proto_project)) as conn:
        conn.send(b"Content-Length: 999999999999\r\n\r\n")
        assert conn.read()["error"]["code"] == -32600
    with Raw(sock_of(proto_project)) as conn:
        conn.send(request(1, "devd/status", {}))
        assert conn.answer(1)["result"]["pid"] > 0  # still serving
    text = log_of(proto_project)
    assert "Unhandled exception" not in text and "LimitOverrunError" not in text, text[-2000:]


def test_ten_thousand_invalid_requests_leave_the_log_small(proto_project: Path) -> None:
    size_before = len(log_of(proto_project).encode())
    bad = [frame(b"{oops"), frame(request(1, "devd/noSuchMethod", {})),
           frame(request(2, "devd/spin", {"uri": 5})), frame(b"[]"),
           frame(request(3, "textDocument/hover", {"textDocument": 1})),
           frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"x": 1}})]
    payload = b"".join(bad[i % len(bad)] for i in range(10_000))
    with Raw(sock_of(proto_project), timeout=60) as conn:
        sender = threading.Thread(target=conn.send, args=(payload,))
        sender.start()
        answers = 0
        expected = sum(1 for i in range(10_000) if i % len(bad) != 5)  # not the notification
        while answers < expected:
            message = conn.read(timeout=60)
            assert message is not None
            answers += 1
        sender.join()
        conn.send(request(99, "devd/status", {}))
        assert conn.answer(99)["result"]["pid"] > 0
    grown = len(log_of(proto_project).encode()) - size_before
    assert grown < 20_000, f"daemon.log grew by {grown} bytes"


def test_the_daemon_log_rolls_over_at_its_cap(tmp_path: Path) -> None:
    """daemon.log is capped and rotated, and what is written to fds 1 and 2 follows it."""
    code = textwrap.dedent("""
        import logging, os, sys
        from devd.core import daemonlog
        daemonlog.setup(sys.argv[1], max_bytes=8192)
        log = logging.getLogger("devd.test")
        for i in range(3000):
            log.warning(f"distinct message {i} " + "x" * 40)
        os.write(2, b"raw fd 2 write\\n")
        print("print to stdout", flush=True)
        log.warning("last")
    """)
    path = tmp_path / "daemon.log"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    assert path.stat().st_size <= 8192 + 200
    assert (tmp_path / "daemon.log.1").stat().st_size <= 8192 + 200
    assert not (tmp_path / "daemon.log.2").exists()
    text = path.read_text()
    assert "raw fd 2 write" in text and "print to stdout" in text and "last" in text
