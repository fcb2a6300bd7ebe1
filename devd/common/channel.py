"""The pipe between a warm process and its child: length-prefixed pickled ``(kind, payload)``
messages (the child's result and events one way, an armed child's request the other)."""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Iterator
from typing import Any

import cloudpickle


class Channel:
    """Length-prefixed pickled ``(kind, payload)`` messages over a pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, kind: str, payload: Any, by_value: bool = False) -> None:
        """``by_value``: a request carrying the caller's objects (a notebook's classes,
        perhaps made after the child was forked) goes by cloudpickle's value."""
        data = dumps_message((kind, payload), by_value=by_value)
        view = memoryview(struct.pack("!Q", len(data)) + data)
        while view:
            view = view[os.write(self.fd, view):]


def dumps_message(message: tuple[Any, ...], by_value: bool = False,
                  strict: bool = False) -> bytes:
    """A ``(kind, payload, ...)`` message pickled: by plain pickle (a child's or a worker's
    word is devd's own plain data: ~20 us, where cloudpickle takes ~0.2-0.5 ms), else (or
    ``by_value``) by cloudpickle, which carries a class made in the step; one that cannot be
    is sent as a note the reader skips, unless ``strict``."""
    if not by_value:
        try:
            return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - a local class, a lambda: cloudpickle's by value
            pass
    try:
        return cloudpickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an unpicklable payload must not lose the message
        if strict:
            raise
        return cloudpickle.dumps((message[0], {"unpicklable": repr(exc)}))


def iter_messages(fd: int) -> Iterator[tuple[str, Any]]:
    """Yield each message from a channel as soon as it is complete, until EOF."""
    buffer = bytearray()
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        buffer += chunk
        while len(buffer) >= 8:
            (size,) = struct.unpack("!Q", buffer[:8])
            if len(buffer) < 8 + size:
                break
            body = bytes(buffer[8 : 8 + size])
            del buffer[: 8 + size]
            try:
                yield pickle.loads(body)
            except Exception as exc:  # noqa: BLE001 - unpickling imports and runs the step's classes: any
                yield ("error", f"could not read a message from the child: {exc!r}")
