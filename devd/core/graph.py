"""The flow as a picture: its DAG as Metaflow defines it, each step's state in a run.

The shape comes from the flow model (Metaflow's own graph: linear, branch/join, foreach,
switch with its cases, recursion); the states from a run's task records, read through
Metaflow's Client (so any metadata provider answers); staleness and last spins from the
engine. Plain data, no protocol: the CLI (`devd graph`, `devd runs`) and the daemon turn
it into text or JSON.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field
from typing import Any

from ..common.errors import DevdError
from ..common.report import ArtifactRow
from . import runcache
from .flowmodel import FlowModel

OK, FAILED, RUNNING, NOT_RUN = "ok", "failed", "running", "not-run"


@dataclass(frozen=True)
class StepRecord:
    """One step in a run: its tasks counted by outcome, and when it ran."""

    tasks: int = 0
    ok: int = 0
    failed: int = 0
    running: int = 0
    started: float | None = None  # epoch seconds of its first task
    finished: float | None = None  # of its last task to finish, once none runs

    @property
    def state(self) -> str:
        if self.failed:
            return FAILED
        if self.running:
            return RUNNING
        if self.tasks and self.ok == self.tasks:
            return OK
        return NOT_RUN

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return max(self.finished - self.started, 0.0)


@dataclass(frozen=True)
class RunRecord:
    """A run of the flow, as Metaflow recorded it."""

    flow: str
    run_id: str
    status: str  # ok, failed, running
    created: float | None
    finished: float | None
    user: str | None
    tags: tuple[str, ...]
    steps: dict[str, StepRecord] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.created is None or self.finished is None:
            return None
        return max(self.finished - self.created, 0.0)


@dataclass(frozen=True)
class GraphNode:
    """One step: where it is, where it goes, and how it fared."""

    step: str
    type: str  # start, linear, split, foreach, split-switch, join, end
    line: int  # 1-based line of its ``def``
    next: tuple[str, ...]
    state: str
    stale: bool = False  # its code changed since the run that recorded it
    tasks: int = 0
    tasks_ok: int = 0
    duration_s: float | None = None
    foreach: str | None = None  # the foreach's variable, for a foreach step
    condition: str | None = None  # the switch's condition, for a switch step
    cases: dict[str, str] = field(default_factory=dict)  # switch case -> step
    last_spin: str | None = None  # "ok" or "failed": the step's last spin in this daemon
    last_spin_at: float | None = None


@dataclass(frozen=True)
class FlowGraph:
    flow: str
    file: str
    run: RunRecord | None
    nodes: list[GraphNode]

    @property
    def edges(self) -> list[tuple[str, str, str | None]]:
        """(from, to, label): a switch's edges carry their case, a foreach's its variable."""
        out = []
        for node in self.nodes:
            labels = {step: case for case, step in node.cases.items()}
            for target in node.next:
                out.append((node.step, target, labels.get(target) or (
                    f"foreach {node.foreach}" if node.foreach else None)))
        return out


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _task_outcome(task: Any) -> str:
    if task.finished_at is None:
        return RUNNING
    return OK if task.successful else FAILED


TaskOutcome = tuple[str, float | None, float | None]  # (state, started, finished) of a task


def task_outcome(task: Any) -> TaskOutcome:
    """A task's state and when it started and finished (epoch seconds), as recorded."""
    return (_task_outcome(task), _epoch(getattr(task, "created_at", None)),
            _epoch(task.finished_at))


def _step_record(step: Any) -> StepRecord:
    return step_record([task_outcome(task) for task in step])


def step_record(outcomes: list[TaskOutcome]) -> StepRecord:
    """A step's record from its tasks' outcomes (``task_outcome``)."""
    counts = {OK: 0, FAILED: 0, RUNNING: 0}
    started: list[float] = []
    finished: list[float] = []
    for outcome, began, ended in outcomes:
        counts[outcome] += 1
        if began is not None:
            started.append(began)
        if ended is not None:
            finished.append(ended)
    total = sum(counts.values())
    return StepRecord(total, counts[OK], counts[FAILED], counts[RUNNING],
                      min(started) if started else None,
                      max(finished) if finished and not counts[RUNNING] else None)


def _status(run: Any, steps: dict[str, StepRecord]) -> str:
    if run.finished_at is not None or run.finished:
        return OK if run.successful else FAILED
    if any(s.failed for s in steps.values()) and not any(s.running for s in steps.values()):
        return FAILED  # a task failed and nothing runs: the run ended (its end never came)
    return RUNNING


def _user(run: Any) -> str | None:
    for tag in run.system_tags:
        if tag.startswith("user:"):
            return str(tag[len("user:"):])
    return None


def _runs(flow_name: str) -> list[Any]:
    """The flow's runs, newest first (listed once until a run is added: runcache)."""
    from metaflow.exception import MetaflowNamespaceMismatch, MetaflowNotFound

    try:
        return runcache.run_list(flow_name)
    except (MetaflowNotFound, MetaflowNamespaceMismatch):
        return []


def read_run(flow_name: str, run_id: str | None = None) -> RunRecord | None:
    """The run ``run_id`` (default: the newest in the current namespace) with its steps'
    task records; None when the flow has no run. DevdError for an unknown run id. A
    finished run is read once."""
    from metaflow import Run
    from metaflow.exception import MetaflowNotFound

    run: Any = None
    if run_id is None:
        newest = _runs(flow_name)[:1]
        if not newest:
            return None
        run = newest[0]
        run_id = str(run.id)
    kept = runcache.finished(flow_name, run_id)
    if kept is not None and kept.steps:
        return kept
    if run is None:
        try:
            run = Run(f"{flow_name}/{run_id}", _namespace_check=False)
        except MetaflowNotFound:
            raise DevdError(f"no run {flow_name}/{run_id}; list the runs with "
                            f"`devd runs FLOW`") from None
    steps = {step.id: _step_record(step) for step in run}
    record = _run_record(run, steps)
    if record.status != RUNNING and record.finished is not None:
        runcache.keep(flow_name, run_id, record)
    return record


def _run_record(run: Any, steps: dict[str, StepRecord]) -> RunRecord:
    return RunRecord(run.parent.id if run.parent is not None else run.pathspec.split("/")[0],
                     run.id, _status(run, steps), _epoch(run.created_at),
                     _epoch(run.finished_at), _user(run), tuple(sorted(run.user_tags)),
                     steps)


def recent_runs(flow_name: str, limit: int = 20) -> list[RunRecord]:
    """The newest ``limit`` runs of the flow (current namespace), without their steps'
    task records (a finished run's status comes from its end task, read once; an
    unfinished one's from its tasks: failed, or still running)."""
    out: list[RunRecord] = []
    for run in _runs(flow_name)[:limit]:
        kept = runcache.finished(flow_name, str(run.id))
        if kept is not None:
            out.append(dataclasses.replace(kept, steps={}))
            continue
        done = run.finished
        if done:
            status = OK if run.successful else FAILED
        else:  # failed, or still running: only its tasks tell
            status = _status(run, {step.id: _step_record(step) for step in run})
        record = RunRecord(flow_name, run.id, status, _epoch(run.created_at),
                           _epoch(run.finished_at), _user(run), tuple(sorted(run.user_tags)))
        if done:
            runcache.keep(flow_name, str(run.id), record)
        out.append(record)
    return out


def flow_graph(model: FlowModel, run: RunRecord | None, stale: set[str] | None = None,
               last_spins: dict[str, tuple[bool, float]] | None = None) -> FlowGraph:
    """The flow's DAG with each step's state in ``run`` (``not-run`` everywhere without
    one), the steps whose code changed since it, and the step's last spin (ok, when)."""
    stale = stale or set()
    last_spins = last_spins or {}
    nodes = []
    for name, info in model.steps.items():
        record = run.steps.get(name, StepRecord()) if run is not None else StepRecord()
        spun = last_spins.get(name)
        nodes.append(GraphNode(
            step=name, type=info.type, line=info.def_line, next=tuple(info.out_funcs),
            state=record.state, stale=name in stale and run is not None,
            tasks=record.tasks, tasks_ok=record.ok, duration_s=record.duration_s,
            foreach=info.foreach_param, condition=info.condition, cases=dict(info.cases),
            last_spin=None if spun is None else (OK if spun[0] else FAILED),
            last_spin_at=None if spun is None else spun[1]))
    return FlowGraph(model.flow_name, model.path, run, nodes)


@dataclass(frozen=True)
class TaskRecord:
    """One task of a step in a run: its outcome and, in a foreach, which split it took."""

    pathspec: str
    task_id: str
    state: str
    index: int | None = None  # the innermost foreach's split index
    input: str | None = None  # that split's input value, as a short repr
    duration_s: float | None = None


def _split_of(task: Any) -> tuple[int | None, str | None]:
    """The innermost foreach frame of a task (index, input repr), from its recorded stack."""
    try:
        stack = task["_foreach_stack"].data
    except (KeyError, AttributeError):
        return None, None
    except Exception:  # noqa: BLE001 - an artifact that cannot be read: no split shown
        return None, None
    if not stack:
        return None, None
    frame = stack[-1]
    value = getattr(frame, "value", None)  # Metaflow records the input as text already
    text = None if value is None else value if isinstance(value, str) else repr(value)
    if text is not None and len(text) > 80:
        text = text[:77] + "..."
    return getattr(frame, "index", None), text


def step_tasks(flow_name: str, run_id: str, step: str) -> list[TaskRecord]:
    """The tasks of ``step`` in run ``run_id``, in split order (their index, else their id)."""
    from metaflow import Step
    from metaflow.exception import MetaflowNotFound

    try:
        found = Step(f"{flow_name}/{run_id}/{step}", _namespace_check=False)
    except MetaflowNotFound:
        raise DevdError(f"run {flow_name}/{run_id} has no step '{step}'") from None
    out = []
    for task in found:
        index, value = _split_of(task)
        started, ended = _epoch(task.created_at), _epoch(task.finished_at)
        out.append(TaskRecord(task.pathspec, task.id, _task_outcome(task), index, value,
                              None if started is None or ended is None
                              else max(ended - started, 0.0)))
    return sorted(out, key=lambda t: (t.index if t.index is not None else -1,
                                      int(t.task_id) if t.task_id.isdigit() else 0))


def task_artifacts(pathspec: str, load_limit: int = 1 << 20) -> list[ArtifactRow]:
    """A recorded task's public artifacts as rows (name, type, summary, size): values up to
    ``load_limit`` bytes (as stored) are loaded and summarised, bigger ones only named."""
    from metaflow import Task
    from metaflow.exception import MetaflowNotFound

    from ..common.summary import describe

    try:
        task = Task(pathspec, _namespace_check=False)
    except MetaflowNotFound:
        raise DevdError(f"no task {pathspec}; pick one from `devd graph` or the runs "
                        "explorer") from None
    rows: list[ArtifactRow] = []
    for artifact in task:
        name = artifact.id
        if name.startswith("_"):
            continue
        size = int(artifact.size or 0)
        if size > load_limit:
            rows.append(ArtifactRow(name, "object", f"not loaded ({size} bytes stored)", size))
            continue
        try:
            rows.append(describe(name, artifact.data))
        except Exception as exc:  # noqa: BLE001 - a value that cannot be unpickled here
            rows.append(ArtifactRow(name, "object",
                                    f"cannot be loaded here ({type(exc).__name__})", size))
    return sorted(rows, key=lambda r: r.name)
