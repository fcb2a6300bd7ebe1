"""A small JSON-RPC client (LSP framing) for the CLI to talk to a running daemon (joined,
or started, through devd/cli/daemons.py).

Standard library only, so `devd spin` against a warm daemon starts in milliseconds.
"""

from __future__ import annotations

import os

from ..common.errors import DevdError
from ..common.project import DaemonError, DaemonUnavailable, open_socket
from . import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..common.project import DaemonPaths

    Notification = Callable[[str, Any], None]

_URI_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-._~")


def file_uri(path: str) -> str:
    """``file://`` URI of a path, percent-encoded as urllib's ``quote`` does (without it)."""
    raw = os.path.abspath(path).encode("utf-8", "surrogateescape")
    return "file://" + "".join(chr(b) if b in _URI_SAFE else f"%{b:02X}" for b in raw)


class RpcError(DaemonError):
    def __init__(self, code: int, message: str) -> None:
        first = (message or "").strip().splitlines()[:1]
        super().__init__(f"the daemon answered error {code}: {first[0] if first else '?'}")
        self.code = code
        self.rpc_message = message


def refused(answer: dict[str, Any], default: str) -> DevdError:
    """An answer with ``ok: false`` as the one line a user reads: its ``error.message``
    (every devd method's ``error`` is ``{type, message, ...}``, docs/protocol.md)."""
    error = answer.get("error") or {}
    return DevdError(str(error.get("message") or default))


class DaemonClient:
    """One connection to a project daemon."""

    def __init__(self, paths: DaemonPaths, timeout: float | None = None) -> None:
        self.paths = paths
        self._sock = open_socket(paths, timeout)
        self._buffer = b""
        self._next_id = 0

    def close(self) -> None:
        try:
            self._send({"jsonrpc": "2.0", "method": "exit"})
        except (OSError, DaemonUnavailable):
            pass
        self._sock.close()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, message: dict[str, Any]) -> None:
        body = wire.dumps(message).encode()
        try:
            self._sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        except OSError as exc:  # BrokenPipe, ConnectionReset: the daemon went away
            raise self._gone(exc) from None

    def _gone(self, exc: BaseException | None = None) -> DaemonUnavailable:
        why = f" ({exc.strerror or exc})" if isinstance(exc, OSError) else ""
        return DaemonUnavailable(f"the daemon for {self.paths.root} closed the connection "
                                 f"before answering{why}; see {self.paths.log}")

    def _read_message(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        while len(self._buffer) < length:
            self._fill()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        try:
            message = wire.loads(body)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            raise DaemonError(f"the daemon for {self.paths.root} sent a message devd cannot "
                              f"read ({bytes(body[:60])!r}); see {self.paths.log}")
        return message

    def _fill(self) -> None:
        try:
            chunk = self._sock.recv(1 << 16)
        except TimeoutError:
            raise DaemonUnavailable(f"the daemon for {self.paths.root} did not answer in "
                                    "time") from None
        except OSError as exc:
            raise self._gone(exc) from None
        if not chunk:
            raise self._gone()
        self._buffer += chunk

    def request(self, method: str, params: Any = None,
                on_notification: Notification | None = None) -> Any:
        """Send a request; hand notifications over as they come; return the result."""
        self._next_id += 1
        request_id = self._next_id
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method,
                    "params": params if params is not None else {}})
        while True:
            message = self._read_message()
            if message.get("id") == request_id and "method" not in message:
                if "error" in message:
                    err = message["error"]
                    raise RpcError(int(err.get("code", -1)), str(err.get("message")))
                return message.get("result")
            if "method" in message and "id" in message:  # a request from the server
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "method" in message and on_notification is not None:
                on_notification(message["method"], message.get("params"))


def connect(paths: DaemonPaths, timeout: float | None = None) -> DaemonClient | None:
    """A connection to the project's daemon, or None when none runs."""
    try:
        return DaemonClient(paths, timeout)
    except DaemonUnavailable:
        return None
