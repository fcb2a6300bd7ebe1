"""A small Debug Adapter Protocol client for the tests: what VS Code, PyCharm or nvim-dap
send to debugpy, over a TCP socket, with nothing of debugpy imported here."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from typing import Any


class DapClient:
    """One DAP session: requests get their responses, events are queued in arrival order."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)
        self.timeout = timeout
        self._seq = 0
        self._lock = threading.Lock()
        self._responses: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.closed = threading.Event()
        threading.Thread(target=self._read, daemon=True, name="dap-reader").start()

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                while len(buffer) < length:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                message = json.loads(buffer[:length])
                buffer = buffer[length:]
                self.seen.append(message)
                if message.get("type") == "response":
                    self._responses.setdefault(message["request_seq"], queue.Queue()).put(message)
                elif message.get("type") == "event":
                    self.events.put(message)
        except OSError:
            return
        finally:
            self.closed.set()

    def send(self, command: str, arguments: dict[str, Any] | None = None) -> int:
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._responses.setdefault(seq, queue.Queue())
            body = json.dumps({"seq": seq, "type": "request", "command": command,
                               "arguments": arguments or {}}).encode()
            self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return seq

    def response(self, seq: int, timeout: float | None = None) -> dict[str, Any]:
        message = self._responses[seq].get(timeout=timeout or self.timeout)
        if not message.get("success"):
            raise AssertionError(f"DAP {message.get('command')} failed: {message.get('message')}")
        return message

    def request(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.response(self.send(command, arguments)).get("body") or {}

    def wait_event(self, name: str, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no DAP '{name}' event; saw "
                                     f"{[m.get('event') or m.get('command') for m in self.seen]}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event.get("event") == name:
                return event

    def attach(self, breakpoints: dict[str, list[int]],
               exception_filters: list[str] | None = None) -> dict[str, Any]:
        """initialize, attach, breakpoints, exception filters, configurationDone: what an
        editor does. ``exception_filters`` None: those the adapter marks default, as VS
        Code sends them when the user ticked nothing."""
        capabilities = self.request("initialize", {
            "clientID": "devd-tests", "adapterID": "debugpy", "linesStartAt1": True,
            "columnsStartAt1": True, "pathFormat": "path"})
        if exception_filters is None:
            exception_filters = [f["filter"] for f in
                                 capabilities.get("exceptionBreakpointFilters", [])
                                 if f.get("default")]
        attach_seq = self.send("attach", {"justMyCode": False})
        self.wait_event("initialized")
        verified = {}
        for path, lines in breakpoints.items():
            body = self.request("setBreakpoints", {
                "source": {"path": path}, "breakpoints": [{"line": n} for n in lines]})
            verified[path] = body.get("breakpoints")
        self.request("setExceptionBreakpoints", {"filters": exception_filters})
        self.request("configurationDone")
        self.response(attach_seq)
        return verified

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
