"""The wire forms of the flow view's and the runs explorer's methods: ``devd/graph``,
``devd/runs``, ``devd/tasks``, ``devd/task``, ``devd/artifactValue`` and ``devd/taskCard``
(the others' are in devd/lsp/spinmodels.py)."""

from __future__ import annotations

import attrs

from .spinmodels import ArtifactRow, ErrorInfo, WebviewOptions
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


@attrs.define
class StepState:
    """One step's state in a running run (``devd/runProgress``)."""

    step: str = req()
    state: str = req(doc="running, ok, failed or not-run")
    tasks: int = req()
    tasks_ok: int = req()
    duration_s: float | None = sent()


@attrs.define
class RunProgressParams:
    """``devd/runProgress``: every step's state in a running run, as its tasks start and
    end (the flow view's live nodes)."""

    uri: str = req()
    flow: str = req()
    run_id: str = req()
    steps: list[StepState] = req()


@attrs.define
class ArtifactValueParams:
    """``devd/artifactValue``: one recorded artifact's value, read and rendered by the
    daemon (the runs explorer's pane; nothing is unpickled in the editor)."""

    uri: str = req(hint="the flow file")
    pathspec: str = req(hint="the task, Flow/RUN/STEP/TASK")
    name: str = req(hint="the artifact's name")
    webview: WebviewOptions | None = opt(doc="render the value's page for this pane")


@attrs.define
class ValueStats:
    """A numeric array's statistics, NaNs left out."""

    min: float = req()
    max: float = req()
    mean: float = req()
    over: int = req(doc="over this many elements (the first ones of a huge array)")
    nan: int | None = opt(doc="a float array's NaNs")


@attrs.define
class ValueView:
    """One artifact's value as the pane shows it: ``kind`` says which fields it has."""

    name: str = req()
    pathspec: str = req()
    kind: str = req(doc="dataframe, array, image, json, text, repr, big (not loaded) or "
                        "unreadable")
    type: str = req()
    summary: str = req()
    stored_bytes: int | None = opt(doc="as Metaflow stored it")
    size_bytes: int | None = opt(doc="in memory, when known")
    shape: list[int] | None = opt()
    dtype: str | None = opt(doc="an array's")
    stats: ValueStats | None = opt(doc="a numeric array's")
    dtypes: list[list[str]] | None = opt(doc="a dataframe's [column, dtype] (at most 200)")
    columns: list[str] | None = opt(doc="a dataframe's head: its columns (at most 20)")
    index: list[str] | None = opt(doc="its rows' index labels (at most 20)")
    rows: list[list[str]] | None = opt(doc="its cells as text")
    text: str | None = opt(doc="json, text, repr, array: at most 64,000 characters")
    truncated: bool | None = opt(doc="`text` is the start of a longer one")
    text_chars: int | None = opt(doc="the whole text's length, when truncated")
    chars: int | None = opt(doc="a string's length")
    mime: str | None = opt(doc="an image's: image/png or image/jpeg")
    width: int | None = opt()
    height: int | None = opt()
    image_bytes: int | None = opt()
    data: str | None = opt(doc="the image, base64 (at most 4 MB; left out with `webview`)")


@attrs.define
class ArtifactValueResult:
    """``devd/artifactValue``: the value's view, and with ``webview`` its page (no script,
    its style by the pane's nonce, images as data: URIs); ``ok`` false with ``error`` for
    an unknown task or artifact."""

    ok: bool = req()
    value: ValueView | None = opt()
    html: str | None = opt(doc="with `webview`: the page for the pane")
    error: ErrorInfo | None = opt()


@attrs.define
class TaskCardParams:
    """``devd/taskCard``: a recorded task's preview page with the cards Metaflow stored for
    it (the runs explorer's Open Card); answered as ``devd/card`` is."""

    uri: str = req(hint="the flow file")
    pathspec: str = req(hint="the task, Flow/RUN/STEP/TASK")
    webview: WebviewOptions | None = opt(doc="render the preview for this card pane")
