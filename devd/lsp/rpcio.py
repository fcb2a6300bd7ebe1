"""The daemon's side of the wire: LSP framing and JSON-RPC 2.0 envelopes, read strictly.

pygls's own reader answers a request it cannot read with ``id: null`` (so the client
waits for its own id forever), lets a long header line raise out of the connection, and
logs a traceback for every bad message. This reader answers every request with its own id,
names the offending field of wrong-typed params (-32602, in one line: devd/lsp/strict.py
reads devd's own methods' params into their models, JSON's types kept), and refuses
oversized headers and bodies with an error before closing the connection. Valid messages
go to pygls's protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cattrs
from pygls.protocol import JsonRPCProtocol
from pygls.protocol.json_rpc import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
)

from .models import REQUESTS
from .strict import describe
from .wire import json_type

if TYPE_CHECKING:
    from pygls.io_ import Writer

log = logging.getLogger("devd.rpc")

MAX_LINE = 1 << 16  # a header line longer than this is refused (the connection's reader limit)
MAX_HEADERS = 32
MAX_BODY = 256 << 20

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602


class FramingError(Exception):
    """The byte stream cannot be read as LSP messages any more: answer, then close."""


def error(msg_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


async def read_body(reader: asyncio.StreamReader) -> bytes | None:
    """The next message's body; None at the end of the stream."""
    length: int | None = None
    headers = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip() or headers:
                raise FramingError("the stream ended inside a message header") from None
            return None
        except asyncio.LimitOverrunError:
            raise FramingError(f"header line longer than {MAX_LINE} bytes") from None
        line = line.rstrip(b"\r\n")
        if not line:
            if headers == 0:
                continue  # a stray blank line between messages
            if length is None:
                raise FramingError("message without a Content-Length header")
            break
        headers += 1
        if headers > MAX_HEADERS:
            raise FramingError(f"more than {MAX_HEADERS} header lines")
        name, sep, value = line.partition(b":")
        if not sep:
            raise FramingError(f"not a header line: {line[:60]!r}")
        if name.strip().lower() == b"content-length":
            value = value.strip()
            if not value.isdigit() or len(value) > 12:
                raise FramingError(f"bad Content-Length: {value[:20]!r}")
            length = int(value)
            if length > MAX_BODY:
                raise FramingError(f"message of {length} bytes (the limit is {MAX_BODY})")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None


def frame(message: dict[str, Any]) -> bytes:
    """One JSON-RPC message with its LSP header, as it goes on the wire."""
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Connection:
    """Reads one client's messages and hands the valid ones to its pygls protocol.

    Its own answers (errors for messages pygls never sees) go through ``writer``, the
    same thread-safe writer the protocol was given, not through pygls's private sender.
    """

    def __init__(self, protocol: JsonRPCProtocol, converter: cattrs.Converter, writer: Writer,
                 note: Callable[[str, str], None] | None = None) -> None:
        self.protocol = protocol
        self.converter = converter
        self.writer = writer
        self.note = note or (lambda key, text: log.warning("%s", text))
        self.shut_down = False  # the client sent shutdown: requests other than exit refused

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(frame(message))

    def reject(self, msg_id: Any, code: int, message: str) -> None:
        self.note(f"invalid message ({code})", f"answered {code}: {message[:300]}")
        if msg_id is not _NO_ID:
            self.send(error(msg_id, code, message))

    async def serve(self, reader: asyncio.StreamReader, stop: threading.Event) -> bool:
        """Handle messages until the stream ends or ``stop`` is set; True when it stopped on
        bytes that cannot be framed (answered with -32600: the caller closes)."""
        while not stop.is_set():
            try:
                body = await read_body(reader)
            except FramingError as exc:
                self.reject(None, INVALID_REQUEST, f"Invalid request: {exc}; closing")
                return True
            if body is None:
                return False
            self.handle(body)
        return False

    def handle(self, body: bytes) -> None:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            self.reject(None, PARSE_ERROR, f"Parse error: {exc}")
            return
        if not isinstance(data, dict):
            what = "batches are not supported" if isinstance(data, list) else \
                f"got {json_type(data)}"
            self.reject(None, INVALID_REQUEST, f"Invalid request: a message must be a JSON "
                        f"object ({what})")
            return
        msg_id = data.get("id", _NO_ID)
        if msg_id is not _NO_ID and msg_id is not None and \
                json_type(msg_id) not in ("string", "integer"):
            self.reject(None, INVALID_REQUEST,
                        f"Invalid request: 'id' must be a string or an integer, got "
                        f"{json_type(msg_id)}")
            return
        answer_to = msg_id if msg_id is not _NO_ID else _NO_ID
        if data.get("jsonrpc") != "2.0":
            self.reject(answer_to if "method" in data else None, INVALID_REQUEST,
                        "Invalid request: 'jsonrpc' must be \"2.0\"")
            return
        if "method" not in data:
            if msg_id is not _NO_ID and ("result" in data or "error" in data):
                self._response(data)  # the client answering a request of the server's
            else:
                self.reject(None, INVALID_REQUEST,
                            "Invalid request: neither a request, a notification nor a response")
            return
        method = data["method"]
        if not isinstance(method, str):
            self.reject(answer_to, INVALID_REQUEST,
                        f"Invalid request: 'method' must be a string, got {json_type(method)}")
            return
        if msg_id is None:  # `"id": null` cannot be answered distinctly: not a request
            self.reject(None, INVALID_REQUEST, f"Invalid request: {method} with id null")
            return
        params = data.get("params")
        if params is not None and not isinstance(params, dict | list):
            self.reject(answer_to, INVALID_PARAMS,
                        f"{method}: params must be an object or an array, got "
                        f"{json_type(params)}")
            return
        if params is None and method in REQUESTS:  # devd's methods take no params as {}
            params = {}
        if answer_to is not _NO_ID and self.shut_down and method != "exit":
            self.reject(answer_to, INVALID_REQUEST,
                        f"Invalid request: {method} after shutdown (only exit is accepted)")
            return
        data = {**data, "params": params}
        request = answer_to is not _NO_ID
        kind = self.protocol.get_message_type(method) or \
            (JsonRPCRequestMessage if request else JsonRPCNotification)
        try:
            message = self.converter.structure(data, kind)
        except Exception as exc:  # noqa: BLE001 - every way params can be wrong
            self.reject(answer_to, INVALID_PARAMS, describe(method, exc))
            return
        self.protocol.handle_message(message)
        if method == "shutdown":  # answered at once by pygls: from now on, only exit
            self.shut_down = True

    def _response(self, data: dict[str, Any]) -> None:
        try:
            message = self.protocol.structure_message(data)
        except Exception as exc:  # noqa: BLE001
            self.note("bad response", f"a response the server could not read: {exc}")
            return
        self.protocol.handle_message(message)


class _NoId:
    def __repr__(self) -> str:
        return "<no id>"


_NO_ID: Any = _NoId()

