"""The wire forms of the spin, the daemon's work (run, resume, cancel, status, card,
artifacts) and devd's notifications: one attrs class each (the table of methods:
devd/lsp/models.py; field kinds and camelCase: devd/lsp/wire.py).

``SpinParams``' option fields are ``SpinOptions``' fields that
``devd.common.optiontable.SPIN_SPELLINGS`` spells on the wire: a new spin option needs no
edit here.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

import attrs

from ..common.options import SpinOptions
from ..common.optiontable import SPIN_SPELLINGS
from ..common.report import (
    ArtifactRow,
    CardInfo,
    SpinError,
    StaleMark,
    optional,
)
from ..core.result import SpinReport
from .wire import UNSET, opt, req, sent

# -- shared shapes ------------------------------------------------------------------------
# The rows, marks and the error a spin reports are devd/common/report.py's dataclasses,
# sent as they are; ``ErrorInfo`` is the protocol's name for the one error shape.
ErrorInfo = SpinError


@attrs.define
class ArtifactValue:
    """One artifact with its value's repr (containers cut, at most 2,000 characters)."""

    name: str = req()
    type: str = req()
    summary: str = req()
    repr: str = req()
    size_bytes: int | None = opt()


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


@dataclasses.dataclass
class SpinOutcome(SpinReport):
    """The result of ``devd/spin``, and the params of ``devd/spinFinished``.

    The spin's report (devd/core/result.py) with the flow's ``uri`` and the requester's
    pane page.
    """

    uri: str | None = None
    preview: PanePreview | None = optional(UNSET, doc="in `devd/spinFinished` to a client "
                                           "that named its pane; null when rendering failed")


# -- requests -----------------------------------------------------------------------------

@attrs.define
class SpinTarget:
    """What ``devd/spin`` spins and where its replies go; the options are ``SpinParams``'."""

    uri: str = req(hint="the flow file")
    step: str | None = opt(doc="a step name")
    line: int | None = opt(doc="the 0-based cursor line: the step whose source holds it")
    pathspec: str | None = opt(doc="run/step, Flow/run/step or Flow/run/step/task")
    run_id: str | None = opt(doc="with step or line: the parents come from this run (the "
                                 "runs explorer's pinned run)")
    work_done_token: str | int | None = opt(doc="$/progress of parents downloading")
    webview: WebviewOptions | None = opt(UNSET, doc="the requester's card pane (null: none)")

    def options(self, target: str) -> SpinOptions:
        """The ``SpinOptions`` these params ask for (absent options keep their defaults)."""
        given = {s.field: getattr(self, s.field) for s in SPIN_SPELLINGS if s.wire}
        return SpinOptions(target, **{k: v for k, v in given.items() if v is not None})


def _option_fields() -> dict[str, Any]:
    """``SpinParams``' option fields: each ``SpinOptions`` field the wire spells, of that
    field's own type (a tuple travels as a list), absent when not given."""
    hints = typing.get_type_hints(SpinOptions)

    def on_wire(tp: Any) -> Any:
        if typing.get_origin(tp) is tuple:
            return list[typing.get_args(tp)[0]]  # type: ignore[misc]
        return tp

    return {s.field: attrs.field(type=on_wire(hints[s.field]) | None, default=None,
                                 metadata={"omit": True, "doc": s.doc})
            for s in SPIN_SPELLINGS if s.wire}


@attrs.define(these=_option_fields())
class SpinParams(SpinTarget):
    """The params of ``devd/spin``: its target and every option of a spin.

    One field per option the wire spells (devd/common/optiontable.py), typed as
    ``SpinOptions`` types it: a new option needs no edit here.
    """


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
class WorkerInfo:
    """A warm worker of devd in a step's own interpreter (docs/usage.md, "Environments")."""

    environment: str = req(doc="Metaflow's --environment, or the decorator that moved the step")
    python: str = req()
    pid: int = req()
    warm_bytes: int = req(doc="the parents it keeps warm (counted in the daemon's budget)")
    idle_s: float = req(doc="seconds since its last spin (it stops itself when idle)")
    spins: int = req()


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
    workers: list[WorkerInfo] = sent(list)


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
