"""A child forked ahead of time for a Session's next spin (docs/engine.md, "Prepared children").

After a spin, its flow imported and Metaflow set up, a child waits for the next spin of
the same step; that spin then only pays for running the step. It is refused when what it
was made with changed: the request's fixed part, the warm objects, the process's
environment and sys.path (its source files it checks itself, devd/child/handshake.py).
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..child.gate import gate_point_known
from ..child.request import ChildEvent, SpinRequest
from ..child.run import run_spin
from ..common.forking import ChildOutcome, ChildProcess, OutputCallback
from ..common.loader import user_modules
from ..common.warmstore import WarmFlowDataStore, WarmTask

log = logging.getLogger("devd.prepared")

# How long after a spin its successor's child is forked (see PreparedChildren.prepare).
PREPARE_DELAY_S = float(os.environ.get("DEVD_PREPARE_DELAY_MS", "5")) / 1000


class Prepared:
    """A prepared child and what it was made for."""

    def __init__(self, request: SpinRequest, signature: tuple[Any, ...],
                 child: ChildProcess, state: tuple[Any, ...]) -> None:
        self.key = request.prepared_key()
        self.step = request.step
        self.signature = signature
        self.child = child
        self.state = state
        self.pathspecs = {entry[0] for entry in signature}

    def fits(self, request: SpinRequest, warm_tasks: list[WarmTask]) -> bool:
        """Whether this child was made for ``request``: the same fixed part of it, the
        same warm objects, the same environment and sys.path."""
        return self.key == request.prepared_key() and \
            self.signature == warm_signature(warm_tasks) and self.state == process_state()


class PreparedChildren:
    """The one child a Session keeps prepared, made after each spin and taken by the next."""

    def __init__(self) -> None:
        self.current: Prepared | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] | None = None
        self._thread: threading.Thread | None = None

    def prepare(self, flow_name: str, request: SpinRequest, warm_tasks: list[WarmTask],
                warming: list[threading.Thread], then: Callable[[], None] | None = None
                ) -> None:
        """Fork the child for the next spin of ``request``'s step in the background, once
        the ``warming`` loads are done (the child must inherit what they load), and call
        ``then`` once it is forked. On one long-lived thread: starting one per spin
        delayed the spin's return by a switch."""
        with self._lock:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._serve, args=(self._jobs,),
                                                name="devd-prepare", daemon=True)
                self._thread.start()
            self._jobs.put((flow_name, request, warm_tasks, warming, then))

    def _serve(self, jobs: queue.SimpleQueue[tuple[Any, ...] | None]) -> None:
        while (job := jobs.get()) is not None:
            if jobs.empty():  # else a newer spin asked already: prepare for that one
                try:
                    self._prepare(*job)
                except Exception:  # spins still work, unprepared
                    log.exception("preparing a child failed")
            del job  # waiting must not keep its warm parents alive (evicted, or closed)

    def _prepare(self, flow_name: str, request: SpinRequest, warm_tasks: list[WarmTask],
                 warming: list[threading.Thread], then: Callable[[], None] | None) -> None:
        for thread in warming:
            thread.join()
        # A fork holds the interpreter for milliseconds: let the spin's result go out first.
        time.sleep(PREPARE_DELAY_S)
        if self._closed:
            return
        args = (request, WarmFlowDataStore(flow_name, warm_tasks), warm_tasks, True)
        user_modules()
        gate_point_known()  # asked once here, not by every child (devd/child/gate.py)
        state = process_state()  # what the child inherits; a later change refuses it
        try:
            child = ChildProcess(run_spin, args, armed=True)
        except OSError as exc:  # out of processes or memory: spins still work, unprepared
            log.warning("no child prepared for the next spin of %s (%s)", request.step, exc)
            return
        fresh = Prepared(request, warm_signature(warm_tasks), child, state)
        with self._lock:
            old, self.current = self.current, fresh
        if old is not None:
            old.child.discard()
        if self._closed:
            self.drop()
            return
        threading.Thread(target=self._reap_if_it_dies, args=(fresh,), daemon=True,
                         name="devd-prepared-watch").start()
        if then is not None:
            then()

    def _reap_if_it_dies(self, prepared: Prepared) -> None:
        """A prepared child killed from outside (OOM killer, ``kill``) is dropped and reaped
        at once, not left a zombie until the next spin. Waits on a pidfd: that reaps
        nothing, so the child's own wait keeps its exit status when a spin takes it."""
        import select

        try:
            pidfd = os.pidfd_open(prepared.child.pid)
        except (AttributeError, OSError):  # not Linux 5.3+, or already reaped
            return
        try:
            select.select([pidfd], [], [])
        finally:
            os.close(pidfd)
        with self._lock:
            mine = self.current is prepared
            if mine:
                self.current = None
        if mine:  # it died waiting: nobody else will reap it
            prepared.child.discard()

    def run(self, request: SpinRequest, warm_tasks: list[WarmTask],
            on_output: OutputCallback | None, on_event: Callable[[ChildEvent], None],
            on_started: Callable[[ChildProcess], None]) -> ChildOutcome | None:
        """Run the spin in the prepared child, if there is one made for it and its sources
        are unchanged; its outcome, or None (then a fresh child must run it).
        ``on_started`` gets the child as soon as it has the request (to cancel it)."""
        with self._lock:
            prepared, self.current = self.current, None
        if prepared is None:
            return None
        child = prepared.child
        if not prepared.fits(request, warm_tasks):
            child.discard()
            return None
        try:
            child.send(request, by_value=request.carries_objects)
        except OSError:  # it already ended (its flow failed to import, say)
            child.discard()
            return None
        on_started(child)  # cancellable while it finishes setting up, too
        message = child.next_message()  # it checks its source files first
        if message is None or message[0] != "accepted":
            if child.killed:  # cancelled meanwhile: that is this spin's outcome
                return child.wait()
            child.discard()
            return None
        child.attach(on_output, on_event)
        return child.wait()

    def would_take(self, request: SpinRequest, warm_tasks: list[WarmTask]) -> bool:
        """Whether the prepared child would take ``request`` (changing nothing)."""
        prepared = self.current
        return prepared is not None and prepared.fits(request, warm_tasks)

    def waiting_for(self) -> tuple[str | None, int | None]:
        """(step, pid) of the child prepared for the next spin, if there is one."""
        prepared = self.current
        if prepared is None:
            return None, None
        return prepared.step, prepared.child.pid

    def drop(self) -> None:
        """End the prepared child, if any."""
        with self._lock:
            prepared, self.current = self.current, None
        if prepared is not None:
            prepared.child.discard()

    def dropped(self, pathspecs: list[str]) -> None:
        """Warm tasks left the store: a prepared child holding them would keep their memory."""
        prepared = self.current
        if prepared is not None and any(p in prepared.pathspecs for p in pathspecs):
            self.drop()

    def close(self, wait: float = 5.0) -> None:
        """No more children: end the prepared one, and one being made now once it is.
        Waits (up to ``wait`` s) for a job in hand to end: until then its thread holds the
        warm parents it was given, which a closed Session must let go."""
        self._closed = True
        with self._lock:
            if self._jobs is not None:
                self._jobs.put(None)
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)
        self.drop()


def process_state() -> tuple[dict[Any, Any], tuple[str, ...]]:
    """What a step may see of this process besides its parents: a notebook that sets an
    environment variable or extends sys.path between spins must not get an older child."""
    raw = getattr(os.environ, "_data", None)  # the bytes it holds: no decoding, no sorting
    environ = dict(raw) if isinstance(raw, dict) else dict(os.environ)
    return environ, tuple(sys.path)


def warm_signature(warm_tasks: list[WarmTask]) -> tuple[Any, ...]:
    """Which warm objects a child forked now would hold (it sees none loaded later)."""
    return tuple((t.ref.pathspec, id(t), frozenset(t.values)) for t in warm_tasks)
