"""The wire forms of the flow view's and the runs explorer's methods: ``devd/graph``,
``devd/runs``, ``devd/tasks`` and ``devd/task`` (the others' are in devd/lsp/spinmodels.py)."""

from __future__ import annotations

import attrs

from .spinmodels import ArtifactRow, ErrorInfo
from .wire import opt, req, sent


@attrs.define
class GraphParams:
    """``devd/graph``: the flow's DAG with each step's state in a run."""

    uri: str = req(hint="the flow file")
    run_id: str | None = opt(doc="this run instead of the newest")


@attrs.define
class RunInfo:
    """A run of the flow, as Metaflow recorded it."""

    run_id: str = req()
    status: str = req(doc="ok, failed or running")
    created_at: float | None = sent(doc="epoch seconds")
    finished_at: float | None = sent(doc="epoch seconds")
    duration_s: float | None = sent()
    user: str | None = sent()
    tags: list[str] = sent(list)


@attrs.define
class GraphNodeInfo:
    """One step of the graph: where it is, where it goes, how it fared."""

    step: str = req()
    type: str = req(doc="start, linear, split, foreach, split-switch, join or end")
    line: int = req(doc="1-based line of the step's def")
    next: list[str] = req()
    state: str = req(doc="ok, failed, running or not-run, in the run")
    stale: bool = req(doc="the step's code changed since the run")
    tasks: int = req()
    tasks_ok: int = req()
    duration_s: float | None = sent()
    foreach: str | None = sent(doc="a foreach step's variable")
    condition: str | None = sent(doc="a switch step's condition")
    cases: dict[str, str] = sent(dict, doc="a switch step's case -> next step")
    last_spin: str | None = sent(doc="ok or failed: the step's last spin in this daemon")
    last_spin_at: float | None = sent(doc="epoch seconds")


@attrs.define
class GraphEdge:
    """One edge: a switch's carries its case, a foreach's its variable."""

    from_: str = req()
    to: str = req()
    label: str | None = sent()


@attrs.define
class GraphResult:
    """``devd/graph``; ``ok`` false with ``error`` for a file that is not a flow, an
    unknown run."""

    ok: bool = req()
    flow: str | None = sent()
    file: str | None = sent()
    run: RunInfo | None = sent(doc="null: the flow has no run yet")
    nodes: list[GraphNodeInfo] = sent(list)
    edges: list[GraphEdge] = sent(list)
    error: ErrorInfo | None = opt()


@attrs.define
class RunsParams:
    """``devd/runs``: the flow's recent runs, newest first."""

    uri: str = req(hint="the flow file")
    limit: int | None = opt(doc="at most this many (default 20)")


@attrs.define
class RunsResult:
    """``devd/runs``; ``ok`` false with ``error`` for a file that is not a flow."""

    ok: bool = req()
    flow: str | None = sent()
    runs: list[RunInfo] = sent(list)
    error: ErrorInfo | None = opt()


@attrs.define
class TasksParams:
    """``devd/tasks``: the tasks of one step in a run (the runs explorer)."""

    uri: str = req(hint="the flow file")
    run_id: str = req(hint="the run")
    step: str = req(hint="the step")


@attrs.define
class TaskInfo:
    """One task of a step in a run."""

    pathspec: str = req()
    task_id: str = req()
    state: str = req(doc="ok, failed or running")
    index: int | None = sent(doc="the foreach split it took")
    input: str | None = sent(doc="that split's input, as a short repr")
    duration_s: float | None = sent()


@attrs.define
class TasksResult:
    """``devd/tasks``; ``ok`` false with ``error`` for an unknown run or step."""

    ok: bool = req()
    tasks: list[TaskInfo] = sent(list)
    error: ErrorInfo | None = opt()


@attrs.define
class TaskParams:
    """``devd/task``: a recorded task's artifacts (the runs explorer)."""

    uri: str = req(hint="the flow file")
    pathspec: str = req(hint="the task, Flow/RUN/STEP/TASK")


@attrs.define
class TaskResult:
    """``devd/task``; ``ok`` false with ``error`` for an unknown task."""

    ok: bool = req()
    pathspec: str | None = sent()
    artifacts: list[ArtifactRow] = sent(list)
    error: ErrorInfo | None = opt()
