"""The messages between the daemon and a warm worker in another interpreter
(devd/core/workers.py, devd/core/workermain.py): length-prefixed pickles of protocol 4,
which every Python devd supports reads; a result's values travel pickled one by one."""

from __future__ import annotations

import os
import pickle
import struct
import threading
from collections.abc import Iterator
from typing import Any

_PROTOCOL = 4  # every Python devd supports reads it


def send(fd: int, lock: threading.Lock, message: Any) -> None:
    """Write one message (whole, under ``lock``: several threads send)."""
    data = pickle.dumps(message, protocol=_PROTOCOL)
    view = memoryview(struct.pack("!Q", len(data)) + data)
    with lock:
        while view:
            view = view[os.write(fd, view):]


def messages(fd: int) -> Iterator[Any]:
    """Each message from ``fd`` until it closes."""
    buffer = bytearray()
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return
        buffer += chunk
        while len(buffer) >= 8:
            (size,) = struct.unpack("!Q", buffer[:8])
            if len(buffer) < 8 + size:
                break
            body = bytes(buffer[8:8 + size])
            del buffer[:8 + size]
            yield pickle.loads(body)


def portable(result: Any) -> tuple[Any, dict[str, bytes]]:
    """A ``SpinResult`` without its in-memory values, and the values pickled one by one
    (one that cannot be pickled is left out: its row still shows it)."""
    import dataclasses

    values: dict[str, bytes] = {}
    for name in list(result.all_values or result.artifacts):
        try:
            values[name] = pickle.dumps((result.all_values or result.artifacts)[name],
                                        protocol=_PROTOCOL)
        except Exception:  # noqa: BLE001 - any object's __reduce__ may fail
            continue
    return dataclasses.replace(result, artifacts={}, all_values={}, parents_kept={}), values
