"""Clients that never send `initialize` (the CLI): a real daemon process, raw bytes on its
real socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from devd.project import daemon_paths
from tests.wirehelp import Raw, cli, make_project, request


@pytest.fixture(scope="module")
def proto_project(project: Path) -> Any:
    runtime = tempfile.mkdtemp(prefix="dvq")
    previous = {k: os.environ.get(k) for k in ("DEVD_RUNTIME_DIR", "DEVD_IDLE_TIMEOUT")}
    os.environ["DEVD_RUNTIME_DIR"] = runtime
    os.environ["DEVD_IDLE_TIMEOUT"] = "300"
    root = make_project(project, ("linear_flow.py", "slow_flow.py"), "dvq",
                        run=("linear_flow.py", "slow_flow.py"))
    out = cli(root, "daemon", "start", str(root))
    assert "daemon started" in out.stdout, out.stderr
    yield root
    cli(root, "daemon", "stop", str(root))
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def sock_of(root: Path) -> str:
    return daemon_paths(str(root)).socket


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
            if method == "textDocument/hover":
                assert "`int`" in answer["result"]["contents"]["value"]
            if method == "textDocument/codeLens":
                assert any(lens["command"]["title"] == "▶ Spin" for lens in answer["result"])


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
