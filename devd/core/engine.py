"""The daemon's core: warm sessions for every flow of a project, shared by all clients.

Knows nothing of JSON-RPC. It spins (from recorded runs or from earlier spins), runs and
resumes flows with Metaflow, tracks running work so it can be cancelled or superseded,
keeps the last spin of every step, marks stale parents, and tells listeners what happened
(typed events, devd/core/events.py; devd/lsp/ gives them their wire form).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..common.blobcache import watch as watch_transfers
from ..common.errors import DevdError
from ..common.forking import ChildProcess
from ..common.options import SpinOptions
from ..common.unchanged import fingerprints
from ..common.warmstore import TaskRef, WarmStore, WarmTask
from . import runner
from .events import (
    CardUpdated,
    EngineEvent,
    EngineStatus,
    FileChanged,
    FileDeleted,
    LastSpinStatus,
    Listener,
    PreparedStatus,
    RunFinished,
    RunProgressed,
    SpinFinished,
    SpinRefused,
    SpinStarted,
    WarmTaskStatus,
    WorkerProcessStatus,
    WorkStatus,
)
from .flowmodel import FlowModel
from .graph import FlowGraph, flow_graph, read_run
from .parents import SpinPlan, parse_target
from .result import SpinError, SpinResult
from .session import Session
from .workers import WorkerPool

if TYPE_CHECKING:
    import subprocess

LogCallback = Callable[[str, str], None]

log = logging.getLogger("devd.engine")


def default_budget_bytes() -> int:
    """Half of this machine's memory."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2)
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def step_source_hashes(model: FlowModel) -> dict[str, str]:
    """A hash of each step's source lines, to tell when a step's code changed."""
    with open(model.path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    hashes = {}
    for name, info in model.steps.items():
        text = "\n".join(lines[info.start_line - 1 : info.end_line])
        hashes[name] = hashlib.sha1(text.encode()).hexdigest()
    return hashes


@dataclass
class SpinRecord:
    """The last spin of a step: its result, every value it holds, and its code at the time."""

    result: SpinResult
    sources: dict[str, str]
    finished_at: float
    seq: int
    good: SpinResult | None = None  # the last successful result (values to chain on)
    # the step's code when this result was made: a failure is not reported against code that
    # has changed since (the editor's diagnostic goes when the failing lines do)
    spun_source: str | None = None
    _chain: WarmTask | None = None

    def chain_task(self, flow_name: str) -> WarmTask | None:
        """The last successful spin as a parent task for a chained spin (built on demand)."""
        if self.good is None:
            return None
        if self._chain is None:
            values = dict(self.good.all_values)  # loads passed-down values not read yet
            ref = TaskRef(flow_name, f"devd-spin-{self.seq}", self.good.step, "1", 0,
                          "devd-spin", "")
            self._chain = WarmTask(ref, _ChainDataStore(values, self.seq), values, 0, 0.0,
                                   fingerprints=fingerprints(values))
        return self._chain


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


_SHED = ("[devd: this output was dropped to keep the daemon within its memory budget "
         "(DEVD_BUDGET_MB); spin the step again to see it]\n")
_SHED_CARD = f"<!doctype html><p>{_SHED.strip()}</p>"


def _result_bytes(result: SpinResult) -> int:
    """What keeping a result costs: its output, cards, error text and the values the step
    set (characters counted as bytes)."""
    error = result.error
    return (len(result.stdout) + len(result.stderr) + sum(len(c) for c in result.cards)
            + (len(error.message) + len(error.traceback) if error else 0)
            + result.values_bytes)


def _kept_bytes(records: Iterable[SpinRecord]) -> int:
    """Every kept result once (a failed spin's record shares the last good one)."""
    seen: dict[int, SpinResult] = {}
    for record in records:
        for result in (record.result, record.good):
            if result is not None:
                seen[id(result)] = result
    return sum(_result_bytes(r) for r in seen.values())


def _shed_output(record: SpinRecord) -> int:
    """Drop a kept spin's output and card pages (its values stay, to chain on); the bytes
    freed."""
    freed = 0
    for result in {id(r): r for r in (record.result, record.good) if r is not None}.values():
        before = _result_bytes(result)
        if result.stdout or result.stderr:
            result.stdout = _SHED if result.stdout else ""
            result.stderr = _SHED if result.stderr else ""
        result.cards = [_SHED_CARD for _ in result.cards]
        freed += max(before - _result_bytes(result), 0)
    return freed


class _ChainDataStore:
    """What Metaflow's task runner needs of a parent datastore, for a spin's own output."""

    TYPE = "devd-spin"

    def __init__(self, values: dict[str, Any], seq: int) -> None:
        self._objects = {name: f"devd-spin-{seq}-{name}" for name in values}
        self._info = {name: {"size": 0, "type": type(v).__name__, "encoding": "memory"}
                      for name, v in values.items()}


@dataclass
class Engine:
    """All warm state of one project, and the operations clients ask for."""

    root: str
    budget_bytes: int | None = None
    listeners: list[Listener] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        if self.budget_bytes is None:
            self.budget_bytes = default_budget_bytes()
        self.store = WarmStore(self.budget_bytes)
        # devd in the interpreters of steps that run elsewhere (@pypi, @conda, uv...)
        self.workers = WorkerPool(self.root, self.budget_bytes)
        self._sessions: dict[str, Session] = {}
        self._last: dict[tuple[str, str], SpinRecord] = {}
        self._run_sources: dict[tuple[str, str], dict[str, str]] = {}
        self._work: dict[int, Work] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.last_activity = time.monotonic()
        self.started_at = time.time()
        self.watch_hook: Callable[[str], None] | None = None
        self.kept_bytes = 0  # the last spins kept, counted against budget_bytes

    # -- listeners ---------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self.listeners:
                self.listeners.remove(listener)

    def emit(self, event: EngineEvent) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # one client's failure must not stop the others
                log.exception("a listener failed on %s", type(event).__name__)

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    # -- flows --------------------------------------------------------------------
    def session(self, flow_file: str) -> Session:
        path = os.path.abspath(flow_file)
        with self._lock:
            session = self._sessions.get(path)
            if session is None:
                if not os.path.isfile(path):
                    raise DevdError(f"{path}: no such file; pass the path of your flow's .py file")
                session = Session(path, store=self.store, cwd=self.root,
                                  workers=self.workers)
                self._sessions[path] = session
                self._watch(path)
                try:
                    for config_file in session.model.config_files(self.root):
                        self._watch(config_file)
                except DevdError:
                    pass
            return session

    def _watch(self, path: str) -> None:
        if self.watch_hook is not None and os.path.isfile(path):
            self.watch_hook(path)

    def file_changed(self, path: str) -> None:
        """A watched file changed on disk: drop cached plans and tell every client."""
        path = os.path.abspath(path)
        gone = not os.path.exists(path)
        real = os.path.realpath(path)
        # Runs on the watcher's thread while clients open and release sessions on theirs:
        # take each session with the list, never look it up again after the lock.
        with self._lock:
            flows = {p: s for p, s in self._sessions.items() if os.path.realpath(p) == real}
        for flow, session in flows.items():
            if gone:  # deleted (or moved away): its session and prepared child go too
                self.release_flow(flow)
            else:
                session.forget_plans()
        changed: list[str | None] = [*flows] or [None]  # None: not a flow (a Config...)
        for flow_file in changed:
            if gone:
                self.emit(FileDeleted(path, flow_file))
                continue
            try:
                stale = self.stale_steps(flow_file) if flow_file else None
            except DevdError as exc:  # caught mid-write, or broken: say so
                self.emit(FileChanged(path, flow_file, error=str(exc)))
                continue
            self.emit(FileChanged(path, flow_file, stale=stale))

    def release_flow(self, flow_file: str) -> None:
        """Forget a flow whose file is gone: its session, prepared child and last spins
        (warm parents stay in the shared store, under its budget, for a flow that returns)."""
        path = os.path.abspath(flow_file)
        with self._lock:
            session = self._sessions.pop(path, None)
            for key in [k for k in self._last if k[0] == path]:
                del self._last[key]
        if session is not None:
            session.close()

    def model(self, flow_file: str) -> FlowModel:
        return self.session(flow_file).model

    def flows(self) -> list[str]:
        with self._lock:
            return sorted(self._sessions)

    def last_spin(self, flow_file: str, step: str) -> SpinRecord | None:
        with self._lock:
            return self._last.get((os.path.abspath(flow_file), step))

    def last_spins(self, flow_file: str) -> dict[str, SpinRecord]:
        path = os.path.abspath(flow_file)
        with self._lock:
            return {step: rec for (p, step), rec in self._last.items() if p == path}

    def resolve_step(self, model: FlowModel, step: str | None, line: int | None,
                     pathspec: str | None) -> str:
        """The step a request means: by name, by 0-based cursor line, or by pathspec."""
        if pathspec:
            return pathspec
        if step:
            model.step(step)
            return step
        if line is not None:
            info = model.step_at_line(int(line) + 1)
            if info is None:
                raise DevdError(
                    f"line {int(line) + 1} of {os.path.basename(model.path)} is not inside a "
                    f"step; put the cursor in one of: {', '.join(model.step_names)}"
                )
            return info.name
        raise DevdError("say which step to spin: give step, line or pathspec")

    # -- spinning -----------------------------------------------------------------
    def spin(
        self,
        flow_file: str,
        options: SpinOptions,
        *,
        on_log: LogCallback | None = None,
        owner: object = None,
        on_debug_ready: Callable[[dict[str, Any]], None] | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
    ) -> SpinResult:
        """Spin ``options.target`` (a step or pathspec); supersedes a running spin of the
        same step. ``options.from_spin`` takes the parents from the last spins of the parent
        steps instead of a recorded run.

        ``on_progress(done, total, message)``: parents downloading from a remote datastore
        (bytes); cancelling the spin stops the download.

        ``options.debug``: the step's child waits for a DAP client first (``on_debug_ready``
        gets its loopback ``{host, port}``); cancel and supersede work as for any spin.
        """
        self.touch()
        if options.artifacts_module:
            self._watch(os.path.abspath(options.artifacts_module))
        session = self.session(flow_file)
        model = session.model
        step = parse_target(model, options.target).step
        self._supersede(session.flow_file, step)
        work = Work(next(self._ids), "spin", session.flow_file, step, time.time(), lambda: None,
                    owner=owner)
        with self._lock:
            self._work[work.id] = work
        self.emit(SpinStarted(session.flow_file, step))

        def started(child: ChildProcess) -> None:
            work.kill = child.kill
            if work.cancelled:
                child.kill()

        def card_update(entry: dict[str, Any]) -> None:
            self.emit(CardUpdated(session.flow_file, step, entry))

        callbacks: dict[str, Any] = {"on_output": on_log, "on_card": card_update,
                                     "on_started": started, "on_debug_ready": on_debug_ready,
                                     "want_private": True, "diff": True}
        try:
            if options.from_spin:
                if options.persist:
                    raise DevdError("a spin chained on earlier spins cannot be persisted: "
                                    "spin from a recorded run to persist")
                stepenv = session.step_environment(options)
                if stepenv is not None and not stepenv.here:
                    raise DevdError(f"'{step}' runs in {stepenv.python} ({stepenv.name}), "
                                    "where the chained spins' values are not: spin it from "
                                    "the recorded run (without fromSpin)")
                plan, warm_tasks, stale = self._chain_plan(session, model, step)
                result = session.spin_on(plan, warm_tasks, options, **callbacks)
            else:
                with watch_transfers(on_progress,
                                     lambda: work.cancelled or work.superseded):
                    result = session.spin(options, **callbacks)
                stale = self._recorded_staleness(session, model, result)
        except BaseException as exc:
            # Clients show the spin as started (SpinStarted): it ends here, with no result.
            self.emit(SpinRefused(session.flow_file, step,
                                  str(exc).strip().splitlines()[0] if str(exc).strip()
                                  else type(exc).__name__))
            raise
        finally:
            with self._lock:
                self._work.pop(work.id, None)
        if work.superseded or work.cancelled:
            why = "superseded by a newer spin of the same step" if work.superseded \
                else "cancelled"
            result.ok = False
            result.cancelled = "superseded" if work.superseded else "user"
            result.error = SpinError("devd.Cancelled", f"spin of '{step}' {why}",
                                     session.flow_file, None, why)
        result.stale = stale
        if result.cancelled is None:  # a stopped spin leaves the step's last spin as it was
            self._remember(session, model, result)
        self.emit(SpinFinished(session.flow_file, result))
        self.touch()
        return result

    def _supersede(self, flow_file: str, step: str) -> None:
        with self._lock:
            for work in self._work.values():
                if work.kind == "spin" and work.flow == flow_file and work.step == step:
                    work.superseded = True
                    work.kill()

    def _remember(self, session: Session, model: FlowModel, result: SpinResult) -> None:
        """Keep the last spin of the step; a failure keeps the last good values to chain on."""
        key = (session.flow_file, result.step)
        with self._lock:
            previous = self._last.get(key)
            now = step_source_hashes(model) if not result.ok else {}
            if result.ok:
                record = SpinRecord(result, step_source_hashes(model), time.time(),
                                    next(self._ids), good=result)
            elif previous is not None:
                record = SpinRecord(result, previous.sources, time.time(), previous.seq,
                                    good=previous.good, _chain=previous._chain)
            else:
                record = SpinRecord(result, now, time.time(), 0)
            record.spun_source = now.get(result.step) if now else None
            self._last[key] = record
        self._fit_budget(record)

    def _fit_budget(self, newest: SpinRecord) -> None:
        """Kept spins count against the memory budget, with the warm parents: the least
        recently used parents make room for them; past the budget, the older spins give up
        their output and cards, then the oldest go (the newest one always stays). Parents
        leave the store outside the engine's lock: a prepared child holding them ends."""
        budget = self.budget_bytes or 0
        with self._lock:
            records = sorted(self._last.items(), key=lambda item: item[1].finished_at)
            kept = _kept_bytes(r for _, r in records)
            for _, record in records:
                if kept <= budget:
                    break
                if record is not newest:
                    kept -= _shed_output(record)
            for key, record in records:
                if kept <= budget:
                    break
                if record is not newest and self._last.get(key) is record:
                    del self._last[key]
                    kept = _kept_bytes(self._last.values())
            self.kept_bytes = kept
            # what the workers hold warm counts too (each keeps its own parents)
            self.store.budget_bytes = max(budget - kept - self.workers.warm_bytes(), 0)
        for task in self.store.snapshot():  # least recently used first
            if self.store.total_bytes <= self.store.budget_bytes:
                break
            self.store.discard([task.ref.pathspec])

    def _chain_plan(self, session: Session, model: FlowModel,
                    step: str) -> tuple[SpinPlan, list[WarmTask], list[dict[str, str]]]:
        """Parents from the last successful spins of the parent steps (notebook-style)."""
        info = model.steps[step]
        if not info.in_funcs:
            raise DevdError(f"'{step}' is the start step: it has no parent step to chain on; "
                            "spin it without fromSpin")
        if model.join_type(step) == "foreach":
            raise DevdError(f"'{step}' joins a foreach: a chain holds one split only; spin it "
                            "from the recorded run instead")
        now = step_source_hashes(model)
        tasks: list[WarmTask] = []
        stale: list[dict[str, str]] = []
        for parent in info.in_funcs:
            record = self._last.get((session.flow_file, parent))
            chain = record.chain_task(model.flow_name) if record is not None else None
            if record is None or chain is None:
                raise DevdError(f"no successful spin of parent step '{parent}' yet: spin "
                                f"'{parent}' first, or spin '{step}' from the recorded run")
            tasks.append(chain)
            if record.sources.get(parent) != now.get(parent):
                stale.append({"step": parent,
                              "reason": f"code of step '{parent}' changed since its last spin"})
            good = record.good or record.result
            stale.extend(s for s in good.stale if s not in stale)
        split_index = 0 if model.steps[info.in_funcs[0]].type == "foreach" else None
        plan = SpinPlan(step, tasks[0].ref.run_id, tuple(t.ref for t in tasks), split_index,
                        None)
        return plan, tasks, stale

    def _recorded_staleness(self, session: Session, model: FlowModel,
                            result: SpinResult) -> list[dict[str, str]]:
        """Upstream steps whose code changed since the run the parents come from."""
        key = (session.flow_file, result.origin_run_id)
        now = step_source_hashes(model)
        with self._lock:
            recorded = self._run_sources.setdefault(key, now)
        return [
            {"step": s, "reason": f"code of step '{s}' changed since run {result.origin_run_id}"}
            for s in model.ancestors(result.step)
            if s in recorded and recorded[s] != now.get(s)
        ]

    def stale_steps(self, flow_file: str) -> dict[str, list[dict[str, str]]]:
        """For each step, the upstream steps changed since the run its parents come from."""
        path = os.path.abspath(flow_file)
        with self._lock:
            session = self._sessions.get(path)
            runs = [(run_id, recorded) for (p, run_id), recorded in self._run_sources.items()
                    if p == path]
        if session is None:
            return {}
        model = session.model
        now = step_source_hashes(model)
        marks: dict[str, list[dict[str, str]]] = {}
        for run_id, recorded in runs:
            changed = [s for s in model.steps if s in recorded and recorded[s] != now.get(s)]
            for step in model.steps:
                ups = [s for s in model.ancestors(step) if s in changed]
                if ups:
                    marks[step] = [{"step": s, "reason": f"code of step '{s}' changed since "
                                    f"run {run_id}"} for s in ups]
        return marks

    def graph(self, flow_file: str, run_id: str | None = None) -> FlowGraph:
        """The flow's DAG with each step's state in ``run_id`` (default: the newest run),
        the steps whose code changed since that run (as this daemon first saw it, or
        recorded it when it ran the flow), and each step's last spin here."""
        path = os.path.abspath(flow_file)
        model = self.model(path)
        run = read_run(model.flow_name, run_id)
        stale: set[str] = set()
        if run is not None:
            now = step_source_hashes(model)
            with self._lock:
                recorded = self._run_sources.setdefault((path, run.run_id), now)
            stale = {s for s in model.steps if s in recorded and recorded[s] != now.get(s)}
        spins = {step: (record.result.ok, record.finished_at)
                 for step, record in self.last_spins(path).items()}
        return flow_graph(model, run, stale, spins)

    # -- running flows ---------------------------------------------------------------
    def run(self, flow_file: str, subcommand: str, args: list[str],
            on_log: LogCallback | None = None,
            on_progress: Callable[[int, int, str], None] | None = None,
            owner: object = None) -> runner.RunOutcome:
        """A real ``python FLOW run|resume``; its tasks become the default parents after."""
        self.touch()
        session = self.session(flow_file)
        model = session.model
        sources = step_source_hashes(model)
        work = Work(next(self._ids), subcommand, session.flow_file, None, time.time(),
                    lambda: None, owner=owner)
        with self._lock:
            self._work[work.id] = work
        # From the run's task records, as Metaflow keeps them: steps done for on_progress,
        # every step's state for the listeners (a live graph) as tasks start and end.
        progress = runner.TaskProgress(
            model.flow_name, {name: tuple(info.out_funcs) for name, info in model.steps.items()},
            on_progress or (lambda done, total, step: None),
            lambda run_id, steps: self.emit(RunProgressed(session.flow_file, run_id, steps)))

        def output(stream: str, text: str) -> None:
            if on_log:
                on_log(stream, text)

        def started(proc: subprocess.Popen[bytes]) -> None:
            work.kill = lambda: runner.kill(proc)
            if work.cancelled:
                runner.kill(proc)

        try:
            outcome = runner.execute(session.flow_file, subcommand, args, on_output=output,
                                     on_start=started, cwd=self.root,
                                     on_run=progress.poll)
        finally:
            with self._lock:
                self._work.pop(work.id, None)
        outcome.cancelled = work.cancelled
        if outcome.run_id:
            with self._lock:
                self._run_sources[(session.flow_file, outcome.run_id)] = sources
        session.forget_plans()
        self.emit(RunFinished(session.flow_file, "resume" if subcommand == "resume" else "run",
                              outcome.run_id, outcome.ok))
        self.touch()
        return outcome

    def close(self) -> None:
        """Stop running work and end every flow's prepared child (the daemon is exiting)."""
        self.cancel()
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.close()
        self.workers.close()

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

    def forget_flow_file(self, flow_file: str) -> None:
        """The file changed on disk: drop cached plans (models reload by themselves)."""
        with self._lock:
            session = self._sessions.get(os.path.abspath(flow_file))
        if session is not None:
            session.forget_plans()

    # -- state ---------------------------------------------------------------------------
    def running(self) -> list[Work]:
        with self._lock:
            return list(self._work.values())

    def status(self) -> EngineStatus:
        """What is warm, what runs, the last spin of each step, the children forked ahead."""
        warm = self.store.snapshot()
        with self._lock:  # clients ask on their threads while others open and release flows
            # oldest first, newest last: clients take a flow's last entry as its newest spin
            last = sorted(self._last.items(), key=lambda item: item[1].finished_at)
            sessions = sorted(self._sessions.items())
        now = time.time()
        return EngineStatus(
            root=self.root,
            pid=os.getpid(),
            started_at=self.started_at,
            warm=[WarmTaskStatus(t.ref.pathspec, t.size_bytes, len(t.values), t.load_seconds)
                  for t in warm],
            warm_bytes=self.store.total_bytes,
            budget_bytes=self.budget_bytes or 0,
            running=[WorkStatus(w.id, w.kind, w.flow, w.step, now - w.started_at)
                     for w in self.running()],
            flows=self.flows(),
            last_spins=[LastSpinStatus(p, s, r.result.ok, r.result.duration_s)
                        for (p, s), r in last],
            prepared=[PreparedStatus(path, step, pid)
                      for path, session in sessions
                      for step, pid in [session.prepared.waiting_for()]
                      if step and pid is not None],
            workers=[WorkerProcessStatus(w.environment, w.python, w.pid, w.warm_bytes,
                                         w.idle_s, w.spins) for w in self.workers.status()],
        )
