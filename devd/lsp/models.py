"""The wire forms of devd's own JSON-RPC methods and notifications: one attrs class each.

As lsprotocol does for LSP: snake_case attributes, camelCase on the wire, through hooks
``register`` adds to pygls's converter. Requests arrive as these classes (the server's
``get_message_type``), results and notifications leave as them; the extension's TypeScript
(vscode-extension/src/protocol.ts) is generated from them (devd/lsp/tsgen.py) and
docs/protocol.md is checked against them (tests/test_protocol_models.py).

A field made with ``opt()`` may be absent on the wire (TypeScript ``name?``): it is left out
when it holds its default. Every other field is always sent. ``SpinParams``' option fields
come from ``devd.common.optiontable.SPIN_SPELLINGS``: a new spin option needs no edit here.

Params are checked (``check_params``) before cattrs structures them: cattrs would turn
``5`` into ``"5"`` for a string field, and its errors do not read as one line.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, Literal

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ..common.options import SpinOptions
from ..common.optiontable import SPIN_SPELLINGS


class _Unset:
    """The default of a field whose ``null`` means something else than its absence."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def opt(default: Any = None, doc: str = "") -> Any:
    """A field that may be absent on the wire; left out when it holds ``default``."""
    return attrs.field(default=default, metadata={"omit": True, "doc": doc})


def req(doc: str = "", hint: str = "") -> Any:
    """A required field; ``hint`` ends the message when a request lacks it."""
    return attrs.field(metadata={"doc": doc, "hint": hint})


def sent(default: Any = None, doc: str = "") -> Any:
    """A field with a default that is always on the wire (``null`` when unset)."""
    factory = default if callable(default) else None
    if factory is not None:
        return attrs.field(factory=factory, metadata={"doc": doc})
    return attrs.field(default=default, metadata={"doc": doc})


# -- shared shapes ------------------------------------------------------------------------

@attrs.define
class ErrorInfo:
    """Why a request, a spin or a run failed: the one error shape of every devd method.

    ``type``: the exception's type (``ZeroDivisionError``) or devd's own: ``devd.BadRequest``
    (the request cannot be served as asked), ``devd.Cancelled``, ``devd.DebugTimeout``.
    """

    type: str = req()
    message: str = req(doc="one line")
    file: str | None = opt(doc="the file the error is in (a step's failure: the flow file)")
    line: int | None = opt(doc="1-based line in `file`")
    traceback: str | None = opt()


@attrs.define
class StaleMark:
    """A parent whose code changed since the run the spin's parents come from."""

    step: str = req()
    reason: str = req()


@attrs.define
class ArtifactRow:
    """One artifact as listed: its type and a short summary."""

    name: str = req()
    type: str = req()
    summary: str = req()
    size_bytes: int | None = opt()


@attrs.define
class ArtifactValue:
    """One artifact with its value's repr (containers cut, at most 2,000 characters)."""

    name: str = req()
    type: str = req()
    summary: str = req()
    repr: str = req()
    size_bytes: int | None = opt()


@attrs.define
class CardInfo:
    """A card of the spun task; ``html`` is left out for a client with ``cardHtml: false``."""

    index: int = req()
    id: str | None = sent()
    type: str | None = sent()
    uuid: str | None = opt()
    html: str | None = opt()


@attrs.define
class SplitInfo:
    """The split of a foreach body a spin took (``devd/spin``'s ``split`` picks another)."""

    index: int = req()
    count: int = req()


@attrs.define
class PanePreview:
    """A spin's preview page rendered for the requester's card pane."""

    html: str = req()
    assets: list[str] = req(doc="the big card scripts this page carries in full")
    version: int | None = req(doc="the pane's `version`, echoed")


@attrs.define
class WebviewOptions:
    """A card pane previews are rendered for (docs/protocol.md, ``devd/card``)."""

    nonce: str = req()
    csp_source: str | None = opt()
    assets: list[str] | None = opt(doc="the big card scripts the pane's page holds")
    version: int | None = opt(doc="the pane's page version, echoed in `preview`")


@attrs.define
class SpinOutcome:
    """The result of ``devd/spin``, and the params of ``devd/spinFinished``."""

    ok: bool = req()
    uri: str | None = sent()
    flow: str | None = sent()
    step: str | None = sent()
    pathspec: str | None = sent()
    persisted: bool = sent(False)
    duration_ms: float = sent(0.0)
    artifacts: list[ArtifactRow] = sent(list)
    stdout: str = sent("")
    stderr: str = sent("")
    error: ErrorInfo | None = sent()
    next_steps: list[str] = sent(list)
    parents: list[str] = sent(list)
    origin_run_id: str | None = sent()
    notices: list[str] = sent(list)
    timings_ms: dict[str, float] = sent(dict)
    cards: list[CardInfo] = sent(list)
    recorded_task: str | None = sent()
    stale: list[StaleMark] | None = opt(doc="present only when something is stale")
    split: SplitInfo | None = opt(doc="a foreach body: the split spun, of how many")
    cancelled: Literal["user", "superseded"] | None = opt(
        doc="the spin was stopped (devd/cancel, or a newer spin of the step): not a failure")
    preview: PanePreview | None = opt(UNSET, doc="in `devd/spinFinished` to a client that "
                                      "named its pane; null when rendering failed")


# -- requests -----------------------------------------------------------------------------

_WIRE_TYPES: dict[str, Any] = {
    "string": str, "boolean": bool, "number": int | float,
    "Record<string, unknown>": dict[str, Any], "Record<string, string>": dict[str, str],
}


@attrs.define
class SpinTarget:
    """What ``devd/spin`` spins and where its replies go; the options are ``SpinParams``'."""

    uri: str = req(hint="the flow file")
    step: str | None = opt(doc="a step name")
    line: int | None = opt(doc="the 0-based cursor line: the step whose source holds it")
    pathspec: str | None = opt(doc="run/step, Flow/run/step or Flow/run/step/task")
    work_done_token: str | int | None = opt(doc="$/progress of parents downloading")
    webview: WebviewOptions | None = opt(UNSET, doc="the requester's card pane (null: none)")

    def options(self, target: str) -> SpinOptions:
        """The ``SpinOptions`` these params ask for (absent options keep their defaults)."""
        given = {s.field: getattr(self, s.field) for s in SPIN_SPELLINGS if s.wire}
        return SpinOptions(target, **{k: v for k, v in given.items() if v is not None})


SpinParams: type[SpinTarget] = attrs.make_class(
    "SpinParams",
    {s.field: attrs.field(type=_WIRE_TYPES[s.wire_type] | None, default=None,
                          metadata={"omit": True, "doc": s.doc})
     for s in SPIN_SPELLINGS if s.wire},
    bases=(SpinTarget,),
)
SpinParams.__doc__ = "The params of ``devd/spin``: its target and every option of a spin."
SpinParams.__module__ = __name__


@attrs.define
class RunParams:
    """``devd/run``: Metaflow's own ``python FLOW run ARGS``."""

    uri: str = req(hint="the flow file")
    args: list[str] | None = opt()
    work_done_token: str | int | None = opt()


@attrs.define
class ResumeParams:
    """``devd/resume``: Metaflow's resume, from ``step`` of run ``originRunId``."""

    uri: str = req(hint="the flow file")
    step: str | None = opt()
    origin_run_id: str | int | None = opt()
    args: list[str] | None = opt()
    work_done_token: str | int | None = opt()


@attrs.define
class CancelParams:
    """``devd/cancel``: ``all`` (or nothing), a step name, ``run``, or a work id."""

    target: str | None = opt()


@attrs.define
class StatusParams:
    """``devd/status`` takes nothing."""


@attrs.define
class CardParams:
    """``devd/card``: the last spin's cards and preview page."""

    uri: str = req(hint="the flow file")
    step: str | None = opt()
    pathspec: str | None = opt()
    spin_if_missing: bool | None = opt(doc="spin a step not spun yet first")
    webview: WebviewOptions | None = opt(doc="render the preview for this card pane")


@attrs.define
class ArtifactsParams:
    """``devd/artifacts``: the last spin's artifacts, and one value's repr with ``name``."""

    uri: str = req(hint="the flow file")
    step: str | None = opt()
    pathspec: str | None = opt()
    name: str | None = opt()
    spin_if_missing: bool | None = opt()


# -- results ------------------------------------------------------------------------------

@attrs.define
class RunResult:
    """``devd/run`` and ``devd/resume``: how Metaflow's run went."""

    ok: bool = req()
    run_id: str | None = sent()
    returncode: int | None = opt()
    error: ErrorInfo | None = opt(doc="the run could not start")
    cancelled: bool | None = opt(doc="stopped by devd/cancel: not a failure")


@attrs.define
class CancelResult:
    """The work ids ``devd/cancel`` stopped."""

    cancelled: list[int] = req()


@attrs.define
class WarmTaskInfo:
    """A warm parent task: its size and how long it took to load."""

    pathspec: str = req()
    size_bytes: int = req()
    artifacts: int = req()
    load_seconds: float = req()


@attrs.define
class RunningWork:
    """A spin, run or resume in progress (``id``: for ``devd/cancel``)."""

    id: int = req()
    kind: str = req()
    flow: str = req()
    step: str | None = sent()
    seconds: float = sent(0.0)


@attrs.define
class LastSpin:
    """How the last spin of a step went."""

    flow: str = req()
    step: str = req()
    ok: bool = req()
    duration_ms: float = req()


@attrs.define
class PreparedChild:
    """The child process waiting for the next spin of that step."""

    flow: str = req()
    step: str = req()
    pid: int = req()


@attrs.define
class MemoryStats:
    """The daemon process's resident size and glibc malloc arenas (null: cannot tell)."""

    rss_bytes: int | None = sent()
    malloc_arenas: int | None = sent()
    tuned: bool = sent(False)


@attrs.define
class StatusResult:
    """``devd/status``: what is warm, what runs, the daemon's memory."""

    root: str = req()
    pid: int = req()
    started_at: float = req()
    warm: list[WarmTaskInfo] = req()
    warm_bytes: int = req()
    budget_bytes: int = req()
    running: list[RunningWork] = req()
    flows: list[str] = req()
    last_spins: list[LastSpin] = req()
    prepared: list[PreparedChild] = req()
    memory: MemoryStats = req()


@attrs.define
class CardResult:
    """``devd/card``. With ``webview``: ``{ok, step, preview, assets}`` only."""

    ok: bool = req()
    step: str = req()
    cards: list[CardInfo] | None = opt()
    spin: SpinOutcome | None = opt()
    preview: str | None = opt(doc="the complete preview page")
    assets: list[str] | None = opt(doc="with `webview`: the card scripts carried in full")
    error: ErrorInfo | None = opt()


@attrs.define
class ArtifactsResult:
    """``devd/artifacts``: ``spinOk`` and ``error`` say how the last spin went; ``ok:
    false`` with ``error`` when there is no such spin or artifact."""

    ok: bool = req()
    step: str = req()
    artifacts: list[ArtifactRow] = req()
    error: ErrorInfo | None = sent()
    spin_ok: bool | None = opt()
    origin_run_id: str | None = opt()
    value: ArtifactValue | None = opt()


# -- notifications ------------------------------------------------------------------------

@attrs.define
class LogParams:
    """``devd/log``: output of the requester's spin or run, as it happens."""

    stream: Literal["stdout", "stderr"] = req()
    text: str = req()
    uri: str | None = sent()
    step: str | None = opt()


@attrs.define
class DebugReadyParams:
    """``devd/debugReady``: the debug spin's child listens for a DAP client (loopback)."""

    uri: str = req()
    step: str = req()
    host: str = req()
    port: int = req()


@attrs.define
class StateChangedParams:
    """``devd/stateChanged``: a spin started, a run finished, a flow file changed."""

    reason: Literal["spinStarted", "spinRefused", "runFinished", "resumeFinished",
                    "fileChanged", "fileDeleted"] = req()
    uri: str | None = opt()
    flow: str | None = opt()
    file: str | None = opt()
    step: str | None = opt()
    stale: dict[str, list[StaleMark]] | None = opt(doc="each step's stale parents")
    error: str | None = opt(doc="the changed flow does not load (caught mid-write?); why a "
                            "started spin was refused")
    run_id: str | None = opt()
    ok: bool | None = opt()


@attrs.define
class CardUpdatedParams:
    """``devd/cardUpdated``: a card's live update while its step runs (docs/cards.md)."""

    uri: str = req()
    flow: str = req()
    step: str = req()
    card: Any = req()


# -- methods ------------------------------------------------------------------------------

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


REQUESTS: dict[str, tuple[type, type]] = {
    "devd/spin": (SpinParams, SpinOutcome),
    "devd/run": (RunParams, RunResult),
    "devd/resume": (ResumeParams, RunResult),
    "devd/cancel": (CancelParams, CancelResult),
    "devd/status": (StatusParams, StatusResult),
    "devd/card": (CardParams, CardResult),
    "devd/artifacts": (ArtifactsParams, ArtifactsResult),
    "devd/graph": (GraphParams, GraphResult),
    "devd/runs": (RunsParams, RunsResult),
    "devd/tasks": (TasksParams, TasksResult),
    "devd/task": (TaskParams, TaskResult),
}
NOTIFICATIONS: dict[str, type] = {
    "devd/log": LogParams,
    "devd/spinFinished": SpinOutcome,
    "devd/stateChanged": StateChangedParams,
    "devd/cardUpdated": CardUpdatedParams,
    "devd/debugReady": DebugReadyParams,
}


def camel(name: str) -> str:
    """A snake_case name as the wire spells it (camelCase)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def wire_name(field: attrs.Attribute) -> str:
    """The field's name on the wire: camelCase."""
    return camel(field.name)


def is_optional(field: attrs.Attribute) -> bool:
    """Whether the field may be absent on the wire."""
    return bool(field.metadata.get("omit"))


def _request_envelope(method: str, params: type) -> type:
    """The whole request message, as pygls structures it (lsprotocol's ``XxxRequest``)."""
    name = params.__name__.removesuffix("Params") + "Request"
    msg_id: Any = int | str
    return attrs.make_class(name, {
        "id": attrs.field(type=msg_id),
        "params": attrs.field(type=params),
        "method": attrs.field(type=str, default=method),
        "jsonrpc": attrs.field(type=str, default="2.0"),
    })


ENVELOPES: dict[str, type] = {m: _request_envelope(m, p) for m, (p, _) in REQUESTS.items()}
_MODELS: frozenset[type] = frozenset(
    {SpinTarget, ErrorInfo, StaleMark, ArtifactRow, ArtifactValue, CardInfo, PanePreview, SplitInfo,
     WebviewOptions, WarmTaskInfo, RunningWork, LastSpin, PreparedChild, MemoryStats,
     RunInfo, GraphNodeInfo, GraphEdge, TaskInfo,
     *(p for p, _ in REQUESTS.values()), *(r for _, r in REQUESTS.values()),
     *NOTIFICATIONS.values()})


def models() -> list[type]:
    """Every model, in a stable order (for the generated TypeScript)."""
    return sorted((m for m in _MODELS if m is not SpinTarget), key=lambda m: m.__name__)


@functools.cache
def shared_converter() -> cattrs.Converter:
    """pygls's converter with devd's models registered, built once: building one registers
    every LSP type with cattrs (~8 ms), and the daemon makes a server per connection."""
    from pygls.protocol import default_converter

    return register(default_converter())


def register(converter: cattrs.Converter) -> cattrs.Converter:
    """Add the hooks that read and write devd's models (camelCase, ``opt`` fields left out
    when unset) to pygls's converter; LSP's own types keep lsprotocol's hooks."""

    def unstructure_fn(cls: type) -> Any:
        renamed: dict[str, Any] = {
            a.name: override(rename=wire_name(a), omit_if_default=is_optional(a))
            for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(cls, converter, **renamed)

    def structure_fn(cls: type) -> Any:
        renamed: dict[str, Any] = {a.name: override(rename=wire_name(a))
                                   for a in attrs.fields(cls)}
        return make_dict_structure_fn(cls, converter, **renamed)

    for scalars in (str | int | None, int | float | None):  # checked already: kept as sent
        converter.register_structure_hook(scalars, lambda value, _: value)
    converter.register_unstructure_hook_factory(lambda cls: cls in _MODELS, unstructure_fn)
    converter.register_structure_hook_factory(lambda cls: cls in _MODELS, structure_fn)
    return converter


# -- checking params ----------------------------------------------------------------------

def json_type(value: Any) -> str:
    """The JSON type of a decoded value, as messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def _resolved(cls: type) -> dict[str, Any]:
    attrs.resolve_types(cls)
    return {a.name: a.type for a in attrs.fields(cls)}


def _alternatives(tp: Any) -> list[Any]:
    """The types a union allows, ``None`` left out (null is the same as absent)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [t for t in typing.get_args(tp) if t is not type(None)]
    return [tp]


def _json_kinds(tp: Any) -> tuple[str, ...]:
    """The JSON types a Python annotation accepts (empty: any)."""
    kinds: list[str] = []
    for alt in _alternatives(tp):
        origin = typing.get_origin(alt) or alt
        if alt is Any:
            return ()
        if origin is Literal:
            kinds += [json_type(v) for v in typing.get_args(alt)]
        elif origin is bool:
            kinds.append("boolean")
        elif origin is int:
            kinds.append("integer")
        elif origin is float:
            kinds += ["integer", "number"]
        elif origin is str:
            kinds.append("string")
        elif origin is list:
            kinds.append("array")
        elif origin is dict or attrs.has(origin):
            kinds.append("object")
    return tuple(dict.fromkeys(kinds))


def _problem(method: str, path: str, value: Any, tp: Any) -> str | None:
    """What is wrong with one value of the params (None: nothing), nested models and
    elements included."""
    kinds = _json_kinds(tp)
    if kinds and json_type(value) not in kinds:
        wanted = " or ".join(f"{_article(k)} {k}" for k in kinds)
        return f"{method}: '{path}' must be {wanted}, got {json_type(value)}"
    for alt in _alternatives(tp):
        origin = typing.get_origin(alt)
        if attrs.has(alt) and isinstance(value, dict):
            return _fields_problem(method, f"{path}.", value, alt)
        if origin is list and isinstance(value, list):
            (element,) = typing.get_args(alt)
            items: Any = enumerate(value)
        elif origin is dict and isinstance(value, dict):
            element = typing.get_args(alt)[1]
            items = value.items()
        else:
            continue
        for key, item in items:
            problem = _problem(method, f"{path}[{key!r}]", item, element)
            if problem is not None:
                return problem
    return None


def _fields_problem(method: str, prefix: str, params: dict[str, Any], cls: type) -> str | None:
    hints = _resolved(cls)
    for field in attrs.fields(cls):
        name = prefix + wire_name(field)
        value = params.get(wire_name(field))
        if value is None:
            if field.default is attrs.NOTHING:
                hint = field.metadata.get("hint")
                return f"{method} needs '{name}'" + (f" ({hint})" if hint else "")
            continue
        problem = _problem(method, name, value, hints[field.name])
        if problem is not None:
            return problem
    return None


def check_params(method: str, params: Any) -> str | None:
    """What is wrong with the params of one of devd's methods, in one line naming the
    field in its JSON spelling (None: nothing, or not a devd method). ``null`` is the same
    as absent; unknown fields are ignored."""
    if method not in REQUESTS:
        return None
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return f"{method}: params must be an object, got {json_type(params)}"
    return _fields_problem(method, "", params, REQUESTS[method][0])
