"""What the engine tells its clients: events as they happen, and its status when asked.

Core values, snake_case, no wire spelling: the protocol layer (devd/lsp/) turns them into
devd/stateChanged, devd/spinFinished, devd/cardUpdated and the devd/status answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..common.report import StaleMark
from .graph import StepRecord
from .result import SpinResult

StaleMarks = dict[str, list[StaleMark]]  # step -> its stale parents


@dataclass(frozen=True)
class SpinStarted:
    """A spin of ``step`` of the flow file ``flow`` began."""

    flow: str
    step: str


@dataclass(frozen=True)
class SpinRefused:
    """A spin that had started ended without a result (no run to take parents from, a
    chain with no parent spin, …): ``message`` says why, in one line. Clients that showed
    it as started stop showing it."""

    flow: str
    step: str
    message: str


@dataclass(frozen=True)
class SpinFinished:
    """A spin ended (ok, failed, cancelled or superseded): ``result`` says which."""

    flow: str
    result: SpinResult


@dataclass(frozen=True)
class CardUpdated:
    """A live card event of a running spin, as the child sent it (``entry``: its uuid, id,
    type, mode and ``data`` or re-rendered ``html``; devd/common/cardpage.py reads it)."""

    flow: str
    step: str
    entry: dict[str, Any]


@dataclass(frozen=True)
class FileChanged:
    """A watched file changed on disk. ``flow``: the flow it is (None for a Config file or
    an artifacts module); then ``stale`` holds each step's stale parents, or ``error`` why
    the flow does not load now (caught mid-write?)."""

    file: str
    flow: str | None = None
    stale: StaleMarks | None = None
    error: str | None = None


@dataclass(frozen=True)
class FileDeleted:
    """A watched file is gone; its flow (if it was one) has been released."""

    file: str
    flow: str | None = None


@dataclass(frozen=True)
class RunFinished:
    """A ``run`` or ``resume`` of the flow ended; ``run_id`` is None when none started."""

    flow: str
    kind: Literal["run", "resume"]
    run_id: str | None
    ok: bool


@dataclass(frozen=True)
class RunProgressed:
    """A task of a running ``run`` or ``resume`` started or ended: every step's record in
    run ``run_id`` now (state, task counts), read from Metaflow's task records."""

    flow: str
    run_id: str
    steps: dict[str, StepRecord]


EngineEvent = (SpinStarted | SpinRefused | SpinFinished | CardUpdated | FileChanged | FileDeleted
               | RunFinished | RunProgressed)
Listener = Callable[[EngineEvent], None]


@dataclass(frozen=True)
class WarmTaskStatus:
    """A parent task held warm, its size, and how long loading it took."""

    pathspec: str
    size_bytes: int
    artifacts: int
    load_seconds: float


@dataclass(frozen=True)
class WorkStatus:
    """A spin, run or resume in progress (``id``: what cancelling it takes)."""

    id: int
    kind: str
    flow: str
    step: str | None
    seconds: float


@dataclass(frozen=True)
class LastSpinStatus:
    """How the last spin of a step went."""

    flow: str
    step: str
    ok: bool
    duration_s: float


@dataclass(frozen=True)
class PreparedStatus:
    """A child process forked ahead for the next spin of ``step``."""

    flow: str
    step: str
    pid: int


@dataclass(frozen=True)
class WorkerProcessStatus:
    """A warm worker of devd in a step's own interpreter (devd/core/workers.py)."""

    environment: str
    python: str
    pid: int
    warm_bytes: int
    idle_s: float
    spins: int


@dataclass(frozen=True)
class EngineStatus:
    """Everything ``devd status`` shows but the daemon's own memory."""

    root: str
    pid: int
    started_at: float
    warm: list[WarmTaskStatus]
    warm_bytes: int
    budget_bytes: int
    running: list[WorkStatus]
    flows: list[str]
    last_spins: list[LastSpinStatus]
    prepared: list[PreparedStatus]
    workers: list[WorkerProcessStatus] = field(default_factory=list)
