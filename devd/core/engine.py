"""The daemon's core: warm sessions for every flow of a project, shared by all clients.

Knows nothing of JSON-RPC. It spins (from recorded runs or from earlier spins), runs and
resumes flows with Metaflow, tracks running work so it can be cancelled or superseded,
keeps the last spin of every step, marks stale parents, and tells listeners what happened
(typed events, devd/core/events.py; devd/lsp/ gives them their wire form). The running work
is devd/core/work.py's registry, the last spins devd/core/lastspins.py's records, stale
parents devd/core/staleness.py's.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..common.blobcache import watch as watch_transfers
from ..common.errors import DevdError
from ..common.forking import ChildProcess
from ..common.options import SpinHooks, SpinOptions
from ..common.report import StaleMark
from ..common.warmstore import WarmStore, WarmTask
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
from .lastspins import SpinRecord, records_bytes, shed_output
from .parents import SpinPlan, parse_target
from .result import SpinError, SpinResult
from .session import Session
from .staleness import RunSources, step_source_hashes
from .work import Work, WorkRegistry
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
        self._ids = itertools.count(1)
        self._run_sources = RunSources()  # each step's code in each run: stale parents
        self._work = WorkRegistry(self._ids)  # spins and runs in progress
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
        self._work.supersede(session.flow_file, step)
        work = self._work.start("spin", session.flow_file, step, owner)
        self.emit(SpinStarted(session.flow_file, step))

        def started(child: ChildProcess) -> None:
            work.kill = child.kill
            if work.cancelled:
                child.kill()

        def card_update(entry: dict[str, Any]) -> None:
            self.emit(CardUpdated(session.flow_file, step, entry))

        hooks = SpinHooks(on_output=on_log, on_card=card_update, on_started=started,
                          on_debug_ready=on_debug_ready, want_private=True, diff=True)
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
                result = session.spin_on(plan, warm_tasks, options, hooks)
            else:
                with watch_transfers(on_progress,
                                     lambda: work.cancelled or work.superseded):
                    result = session.spin(options, hooks)
                stale = self._run_sources.stale_parents(model, session.flow_file,
                                                        result.origin_run_id, result.step)
        except BaseException as exc:
            # Clients show the spin as started (SpinStarted): it ends here, with no result.
            self.emit(SpinRefused(session.flow_file, step,
                                  str(exc).strip().splitlines()[0] if str(exc).strip()
                                  else type(exc).__name__))
            raise
        finally:
            self._work.finish(work)
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
            kept = records_bytes(r for _, r in records)
            for _, record in records:
                if kept <= budget:
                    break
                if record is not newest:
                    kept -= shed_output(record)
            for key, record in records:
                if kept <= budget:
                    break
                if record is not newest and self._last.get(key) is record:
                    del self._last[key]
                    kept = records_bytes(self._last.values())
            self.kept_bytes = kept
            # what the workers hold warm counts too (each keeps its own parents)
            self.store.budget_bytes = max(budget - kept - self.workers.warm_bytes(), 0)
        for task in self.store.snapshot():  # least recently used first
            if self.store.total_bytes <= self.store.budget_bytes:
                break
            self.store.discard([task.ref.pathspec])

    def _chain_plan(self, session: Session, model: FlowModel,
                    step: str) -> tuple[SpinPlan, list[WarmTask], list[StaleMark]]:
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
        stale: list[StaleMark] = []
        for parent in info.in_funcs:
            record = self._last.get((session.flow_file, parent))
            chain = record.chain_task(model.flow_name) if record is not None else None
            if record is None or chain is None:
                raise DevdError(f"no successful spin of parent step '{parent}' yet: spin "
                                f"'{parent}' first, or spin '{step}' from the recorded run")
            tasks.append(chain)
            if record.sources.get(parent) != now.get(parent):
                stale.append(StaleMark(parent,
                                       f"code of step '{parent}' changed since its last spin"))
            good = record.good or record.result
            stale.extend(s for s in good.stale if s not in stale)
        split_index = 0 if model.steps[info.in_funcs[0]].type == "foreach" else None
        plan = SpinPlan(step, tasks[0].ref.run_id, tuple(t.ref for t in tasks), split_index,
                        None)
        return plan, tasks, stale

    def stale_steps(self, flow_file: str) -> dict[str, list[StaleMark]]:
        """For each step, the upstream steps changed since the run its parents come from."""
        path = os.path.abspath(flow_file)
        with self._lock:
            session = self._sessions.get(path)
        if session is None:
            return {}
        return self._run_sources.stale_steps(session.model, path)

    def graph(self, flow_file: str, run_id: str | None = None) -> FlowGraph:
        """The flow's DAG with each step's state in ``run_id`` (default: the newest run),
        the steps whose code changed since that run (as this daemon first saw it, or
        recorded it when it ran the flow), and each step's last spin here."""
        path = os.path.abspath(flow_file)
        model = self.model(path)
        run = read_run(model.flow_name, run_id)
        stale = self._run_sources.changed(model, path, run.run_id) if run is not None else set()
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
        work = self._work.start(subcommand, session.flow_file, None, owner)
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
            self._work.finish(work)
        outcome.cancelled = work.cancelled
        if outcome.run_id:
            self._run_sources.record(session.flow_file, outcome.run_id, sources)
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
        return self._work.cancel(target)

    def cancel_owner(self, owner: object) -> list[int]:
        """Stop the work one connection asked for (it closed: nobody waits for it)."""
        return self._work.cancel_owner(owner)

    def forget_flow_file(self, flow_file: str) -> None:
        """The file changed on disk: drop cached plans (models reload by themselves)."""
        with self._lock:
            session = self._sessions.get(os.path.abspath(flow_file))
        if session is not None:
            session.forget_plans()

    # -- state ---------------------------------------------------------------------------
    def running(self) -> list[Work]:
        return self._work.running()

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
