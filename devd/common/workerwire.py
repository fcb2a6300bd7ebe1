"""The messages between the daemon and a warm worker in another interpreter
(devd/core/workers.py, devd/core/workermain.py): a child's channel (devd/common/channel.py),
``(kind, payload)`` with ``payload`` a tuple, sent whole under a lock (several threads send).
A result's values travel pickled one by one (``portable``)."""

from __future__ import annotations

import pickle
import threading
from typing import Any

from .channel import Channel, iter_messages

messages = iter_messages

# What the messages look like: a worker started from devd's files after they changed on
# disk (an upgrade under a running daemon) says another, and the daemon stops it.
WIRE = 2

_PROTOCOL = 4  # a value pickled here is read by another Python version too


def send(fd: int, lock: threading.Lock, kind: str, *payload: Any) -> None:
    """Write one message, whole."""
    with lock:
        Channel(fd).send(kind, payload)


def portable(result: Any) -> tuple[Any, dict[str, bytes]]:
    """A ``SpinResult`` without its in-memory values, and the values pickled one by one
    (one that cannot be pickled is left out: its row still shows it). Values passed down
    unchanged from a parent are not: the daemon reads them from its own warm parents
    (``result.passed_down`` says where), as the worker's own spin would have."""
    import dataclasses

    values: dict[str, bytes] = {}
    source = result.all_values or result.artifacts
    for name in list(source):
        if name in result.passed_down:
            continue
        try:
            values[name] = pickle.dumps(source[name], protocol=_PROTOCOL)
        except Exception:  # noqa: BLE001 - any object's __reduce__ may fail
            continue
    return dataclasses.replace(result, artifacts={}, all_values={}, parents_kept={}), values
