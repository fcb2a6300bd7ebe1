"""Only the owner attaches to a debug spin (issue 22): another local user who finds the
debug port (its LISTEN row in /proc/net/tcp) and speaks DAP to it is cut off before
debugpy reads a byte, while the owner's own client attaches as before; each refusal is in
daemon.log and in the spin's output.

The attacker is a real second Unix user (tests/otheruser.py).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import pytest

from devd.cli.client import DaemonClient
from devd.common.project import daemon_paths
from tests.dapclient import DapClient
from tests.otheruser import attacker, finish
from tests.test_debug import BREAK_LINE, debug_project  # noqa: F401 - the fixture
from tests.wirehelp import log_text

# Connect to the debug port as the other user and try what an attacker would: initialize,
# attach, and evaluate code in the owner's process. Prints what came back.
DAP_ATTACK = """
    import encodings.idna  # before drop(): the interpreter is under /root
    port, marker = int(sys.argv[3]), sys.argv[4]
    drop()
    def message(seq, command, arguments):
        body = json.dumps({"seq": seq, "type": "request", "command": command,
                           "arguments": arguments}).encode()
        return b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body
    received = b""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(message(1, "initialize", {"adapterID": "debugpy", "clientID": "x"}))
        time.sleep(0.3)
        s.sendall(message(2, "attach", {"justMyCode": False})
                  + message(3, "configurationDone", {})
                  + message(4, "evaluate", {"expression":
                                            f"open({marker!r}, 'w').write('pwned')",
                                            "context": "repl"}))
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
        print("closed", repr(received[:300]), flush=True)
    except OSError as exc:
        print("error", type(exc).__name__, repr(received[:300]), flush=True)
"""


class DebugSpin:
    """A ``devd/spin`` with ``debug: true`` in flight; keeps its ``devd/log`` lines."""

    def __init__(self, root: Path, step: str = "double") -> None:
        self.ready: queue.Queue[dict[str, Any]] = queue.Queue()
        self.result: queue.Queue[Any] = queue.Queue()
        self.log: list[str] = []
        client = DaemonClient(daemon_paths(str(root)))
        params = {"uri": (root / "linear_flow.py").as_uri(), "step": step, "debug": True}

        def notified(method: str, payload: Any) -> None:
            if method == "devd/debugReady":
                self.ready.put(payload)
            elif method == "devd/log":
                self.log.append(payload["text"])

        def work() -> None:
            try:
                self.result.put(client.request("devd/spin", params, notified))
            except Exception as exc:  # the test reads it
                self.result.put(exc)
            finally:
                client.close()

        threading.Thread(target=work, daemon=True).start()

    def answer(self, timeout: float = 60) -> dict[str, Any]:
        value = self.result.get(timeout=timeout)
        if isinstance(value, Exception):
            raise value
        return value


def attack(user: tuple[int, int], port: int, marker: Path) -> str:
    proc = attacker(user, DAP_ATTACK, str(port), str(marker))
    out = finish(proc, stop=False)
    assert out, proc.stderr.read() if proc.stderr else "the attacker printed nothing"
    return out


def assert_refused(out: str) -> None:
    """Nothing came back: the connection was closed (or reset) before any DAP answer."""
    assert out.startswith(("closed b''", "error ConnectionResetError b''")), out


def test_another_user_cannot_attach_to_a_debug_spin(other_user: tuple[int, int],
                                                    debug_project: Path,  # noqa: F811
                                                    tmp_path: Path) -> None:
    root = debug_project
    marker = tmp_path / "pwned"
    tmp_path.chmod(0o777)  # the attacker could write here: only a refusal keeps it absent
    spin = DebugSpin(root)
    ready = spin.ready.get(timeout=60)
    # Before the owner attaches: the attacker would otherwise be the debugger.
    assert_refused(attack(other_user, ready["port"], marker))
    dap = DapClient(ready["host"], ready["port"])
    try:
        dap.attach({str(root / "linear_flow.py"): [BREAK_LINE]})
        stopped = dap.wait_event("stopped")
        thread = stopped["body"]["threadId"]
        # While the owner is stopped at a breakpoint: a new connection would replace theirs.
        assert_refused(attack(other_user, ready["port"], marker))
        frame = dap.request("stackTrace", {"threadId": thread})["stackFrames"][0]
        assert dap.request("evaluate", {"expression": "self.x", "frameId": frame["id"],
                                        "context": "repl"})["result"] == "[1, 2, 3]"
        dap.request("continue", {"threadId": thread})
        dap.wait_event("terminated")
    finally:
        dap.close()
    result = spin.answer()
    assert result["ok"], result.get("error")
    assert not marker.exists()
    uid = other_user[0]
    said = f"refused a debugger connection from uid {uid} "
    # The owner sees it (the spin's output, streamed as devd/log) and daemon.log keeps it.
    assert sum(said in text for text in spin.log) == 2, spin.log
    assert log_text(daemon_paths(str(root)).log).count(said) == 2


def test_the_owners_cli_attach_still_works_and_shows_a_refusal(
        other_user: tuple[int, int], debug_project: Path,  # noqa: F811
        tmp_path: Path) -> None:
    """`devd spin --debug` in a terminal: the refusal is printed there."""
    import subprocess
    import sys

    root = debug_project
    proc = subprocess.Popen([sys.executable, "-m", "devd.cli", "spin", "linear_flow.py",
                             "double", "--debug"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    port = int(line.rsplit(":", 1)[1])
    assert_refused(attack(other_user, port, tmp_path / "pwned"))
    dap = DapClient("127.0.0.1", port)
    try:
        dap.attach({})
        dap.wait_event("terminated")
    finally:
        dap.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "LinearFlow/double: ok" in out
    assert f"devd: refused a debugger connection from uid {other_user[0]} " in err, err


@pytest.mark.parametrize("family", ["tcp", "tcp6"])
def test_peer_uid_reads_the_kernels_table(family: str) -> None:
    """The lookup the gate relies on: our own connection is ours (IPv4, and from an IPv6
    socket through an IPv4-mapped address)."""
    import os
    import socket

    from devd.common.debuggate import owner_only_server_socket, peer_uid

    server = owner_only_server_socket("127.0.0.1", 0)
    server.listen(1)
    port = server.getsockname()[1]
    if family == "tcp":
        client = socket.create_connection(("127.0.0.1", port))
    else:
        client = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        client.connect(("::ffff:127.0.0.1", port))
    conn, _ = server.accept()
    try:
        assert peer_uid(conn) == os.getuid()
    finally:
        for s in (conn, client, server):
            s.close()
