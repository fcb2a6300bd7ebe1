"""One user action, one spin (issue 19): with spinOnSave, an editor's Spin on an edited file
saves it first, and the save spins too. The two arrive in either order, milliseconds apart;
whichever comes second joins the first instead of starting a spin that supersedes it.

- didSave, then devd/spin of the same step with no other option: the request waits for the
  save's spin and answers its result (once, within JOIN_S of the save).
- devd/spin, then didSave: the request's spin began after the file was written (its mtime),
  so it spun the saved code (finished or not): the save spins nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..common.options import SpinOptions
from ..core.result import SpinResult

if TYPE_CHECKING:
    from .server import DevdServer

JOIN_S = 3.0  # a Spin this soon after the save it caused is the same action


@dataclass
class SaveSpin:
    """The spin a save started: what it spins, when, and its result to come (None when it
    could not start)."""

    path: str
    step: str
    at: float
    future: Future[SpinResult | None] = field(default_factory=Future)


@dataclass
class Spins:
    """One connection's devd/spin requests (by path: when the newest began) and its last
    save's spin."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[str, float] = field(default_factory=dict)
    save: SaveSpin | None = None


def save_needs_spin(server: DevdServer, path: str) -> bool:
    """False when a devd/spin of ``path`` from this client began after the file was written."""
    spins = server.one_spin
    try:
        written = os.stat(path).st_mtime
    except OSError:
        return True
    with spins.lock:
        began = spins.requests.get(path)
    return began is None or began < written


def spin_on_save(server: DevdServer, path: str, step: str,
                 spin: Callable[[], SpinResult | None]) -> None:
    """Register the save's spin for a devd/spin to join (now, on the event loop, before
    that request can look), then run it on the pool."""
    pending = SaveSpin(path, step, time.monotonic())
    spins = server.one_spin
    with spins.lock:
        spins.save = pending

    def run() -> None:
        try:
            pending.future.set_result(spin())
        except BaseException as exc:
            pending.future.set_exception(exc)
            raise

    server.pool.submit(run)


def join_save_spin(server: DevdServer, path: str, options: SpinOptions) -> SpinResult | None:
    """The result of the save's spin when this request is the same action (same file and
    step, no other option, soon after the save); None: spin as asked."""
    spins = server.one_spin
    with spins.lock:
        pending = spins.save
        if pending is None or pending.path != path or \
                time.monotonic() - pending.at > JOIN_S:
            return None
        spins.save = None  # joined once: pressing Spin again spins again
    if options != SpinOptions(pending.step):
        return None
    try:
        return pending.future.result()
    except Exception:  # noqa: BLE001 - the save's spin failed to run: spin as asked
        return None


class RequestSpin:
    """Marks when a devd/spin of ``path`` began (``with``), for save_needs_spin: a spin
    that began after the file was written ran the saved code, finished or not."""

    def __init__(self, server: DevdServer, path: str) -> None:
        self.spins = server.one_spin
        self.path = path

    def __enter__(self) -> RequestSpin:
        with self.spins.lock:
            self.spins.requests[self.path] = time.time()
        return self

    def __exit__(self, *exc: object) -> None:
        pass
