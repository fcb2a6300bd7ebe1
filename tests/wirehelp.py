"""Raw JSON-RPC over a daemon's socket, and the CLI as a subprocess: for the protocol and
security tests, which must see exactly what goes over the wire."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.conftest import run_flow


def frame(obj: Any) -> bytes:
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def request(msg_id: Any, method: str, params: Any = ..., **extra: Any) -> dict[str, Any]:
    message = {"jsonrpc": "2.0", "id": msg_id, "method": method, **extra}
    if params is not ...:
        message["params"] = params
    return message


class Raw:
    """One connection that sends bytes and reads framed messages."""

    def __init__(self, target: str | tuple[str, int], timeout: float = 10.0) -> None:
        if isinstance(target, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(target)
        else:
            self.sock = socket.create_connection(target, timeout=timeout)
        self.data = b""

    def send(self, payload: bytes | dict[str, Any]) -> None:
        self.sock.sendall(payload if isinstance(payload, bytes) else frame(payload))

    def read(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next message; None when the daemon closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            if b"\r\n\r\n" in self.data:
                head, rest = self.data.split(b"\r\n\r\n", 1)
                length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    self.data = rest[length:]
                    return json.loads(rest[:length])
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.data += chunk

    def answer(self, msg_id: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The response to request ``msg_id`` (notifications before it are skipped)."""
        while True:
            message = self.read(timeout)
            assert message is not None, f"connection closed before the answer to {msg_id!r}"
            if "method" not in message and message.get("id") == msg_id:
                return message

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=env or os.environ.copy())


def make_project(source: Path, flows: tuple[str, ...], prefix: str,
                 run: tuple[str, ...] = ()) -> Path:
    """A project directory of its own (a short path: Unix socket paths are short)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    for name in flows:
        shutil.copy(source / name, root / name)
    for name in run:
        run_flow(root, name)
    return root


def log_text(path: str) -> str:
    """daemon.log and its rotated predecessor."""
    text = ""
    for name in (path + ".1", path):
        try:
            text += Path(name).read_text(errors="replace")
        except FileNotFoundError:
            pass
    return text
