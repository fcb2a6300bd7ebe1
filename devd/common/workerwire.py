"""The messages between the daemon and a warm worker in another interpreter
(devd/core/workers.py, devd/core/workermain.py): ``(kind, payload)`` with ``payload`` a
tuple, sent whole under a lock (several threads send).

A message is framed as a child's channel frames it (devd/common/channel.py: its length,
then the pickle), unless it carries blobs: a spin's values exactly as the step's child
pickled them, which the worker passes on unread (``portable``). Those go after a short
pickled head naming their sizes, each written from its own buffer and read into its own,
never copied or pickled again on the way; the reader hands them over as the payload's
last item, a dict.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import threading
from collections.abc import Iterator
from typing import Any, cast

from .channel import dumps_message

# What the messages look like: a worker started from devd's files after they changed on
# disk (an upgrade under a running daemon) says another, and the daemon stops it. The hello
# is a plain channel frame in every version, so either side can read the other's.
WIRE = 3

_PROTOCOL = 4  # a value pickled here is read by another Python version too
_BLOBS = 1 << 63  # set in a frame's length: a head, then blobs
_SIZE = struct.Struct("!Q")


def send(fd: int, lock: threading.Lock, kind: str, *payload: Any,
         blobs: dict[str, bytes] | None = None) -> None:
    """Write one message, whole; ``blobs`` follow it as they are (see the module's doc)."""
    if blobs is None:
        head, flag = dumps_message((kind, payload)), 0
    else:  # raises if the head cannot be pickled: the blobs' sizes must go first
        head = dumps_message((kind, payload, [(name, len(b)) for name, b in blobs.items()]),
                             strict=True)
        flag = _BLOBS
    with lock:
        _write(fd, memoryview(_SIZE.pack(len(head) | flag) + head))
        for blob in (blobs or {}).values():
            _write(fd, memoryview(blob))


def _write(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


def messages(fd: int) -> Iterator[tuple[str, Any]]:
    """Yield each message as soon as it is complete, until EOF (``fd`` stays open)."""
    with cast(io.BufferedReader, open(fd, "rb", buffering=1 << 16, closefd=False)) as stream:
        while True:
            size = _read(stream, _SIZE.size)
            if size is None:
                return
            (length,) = _SIZE.unpack(size)
            body = _read(stream, length & ~_BLOBS)
            if body is None:
                return
            try:
                message = pickle.loads(body)
            except Exception as exc:  # noqa: BLE001 - unpickling imports the step's classes: any
                yield ("error", f"could not read a message: {exc!r}")
                if length & _BLOBS:
                    return  # its blobs' sizes went with it: the rest cannot be read
                continue
            if not length & _BLOBS:
                yield message
                continue
            blobs = {}
            for name, blob_size in message[2]:
                blob = _read(stream, blob_size)
                if blob is None:
                    return
                blobs[name] = blob
            yield message[0], (*message[1], blobs)


def _read(stream: io.BufferedReader, size: int) -> bytearray | None:
    """Exactly ``size`` bytes (read straight into one buffer), or None at EOF."""
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = stream.readinto(view[got:])
        if not n:
            return None
        got += n
    return buffer


def portable(result: Any) -> tuple[Any, dict[str, bytes]]:
    """A ``SpinResult`` without its in-memory values, and the values as the step's child
    pickled them (``result.value_blobs``: a worker's Session never unpickles them), read
    in the daemon only when asked for. Values passed down unchanged from a parent are not
    sent: the daemon reads them from its own warm parents (``result.passed_down`` says
    where), as the worker's own spin would have. Anything else (none in a spin's usual
    result) is pickled here; one that cannot be is left out, its row still shows it."""
    import dataclasses

    values = {name: blob for name, blob in result.value_blobs.items()
              if name not in result.passed_down}
    source = result.all_values or result.artifacts
    for name in list(source):
        if name in values or name in result.passed_down:
            continue
        try:
            values[name] = pickle.dumps(source[name], protocol=_PROTOCOL)
        except Exception:  # noqa: BLE001 - any object's __reduce__ may fail
            continue
    return dataclasses.replace(result, artifacts={}, all_values={}, parents_kept={},
                               value_blobs={}), values
