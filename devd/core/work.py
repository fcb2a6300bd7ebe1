"""The work running in the daemon (spins, runs, resumes): registered while it runs, so a
newer spin of the same step supersedes it, a client cancels it, and a closed connection
stops what it asked for."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Work:
    """A spin or a run in progress, cancellable."""

    id: int
    kind: str  # "spin" | "run" | "resume"
    flow: str
    step: str | None
    started_at: float
    kill: Callable[[], None]
    cancelled: bool = False
    superseded: bool = False
    owner: object = None  # the connection that asked for it: its end cancels the work


class WorkRegistry:
    """Work in progress by id; ``ids`` numbers it (the engine numbers its spins from it too)."""

    def __init__(self, ids: itertools.count[int]) -> None:
        self._ids = ids
        self._work: dict[int, Work] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, flow: str, step: str | None, owner: object) -> Work:
        """Register new work (its ``kill`` is set once its process exists)."""
        work = Work(next(self._ids), kind, flow, step, time.time(), lambda: None, owner=owner)
        with self._lock:
            self._work[work.id] = work
        return work

    def finish(self, work: Work) -> None:
        with self._lock:
            self._work.pop(work.id, None)

    def supersede(self, flow_file: str, step: str) -> None:
        """Stop a running spin of this step: a newer one replaces it."""
        with self._lock:
            for work in self._work.values():
                if work.kind == "spin" and work.flow == flow_file and work.step == step:
                    work.superseded = True
                    work.kill()

    def cancel(self, target: str | None = None) -> list[int]:
        """Stop running work: all of it, a step's spin, or 'run' for runs and resumes."""
        stopped = []
        with self._lock:
            for work in self._work.values():
                if target in (None, "", "all") or target == work.step or \
                        (target == "run" and work.kind in ("run", "resume")) or \
                        target == str(work.id):
                    work.cancelled = True
                    work.kill()
                    stopped.append(work.id)
        return stopped

    def cancel_owner(self, owner: object) -> list[int]:
        """Stop the work one connection asked for (it closed: nobody waits for it)."""
        stopped = []
        with self._lock:
            for work in self._work.values():
                if work.owner is owner and owner is not None:
                    work.cancelled = True
                    work.kill()
                    stopped.append(work.id)
        return stopped

    def running(self) -> list[Work]:
        with self._lock:
            return list(self._work.values())
