"""The messages a spin's parent and its child exchange: picklable, and all the parent reads.

Nothing here imports the rest of ``devd.child``: the warm parent builds a ``SpinRequest``
and reads a ``ChildResult`` (or ``Outdated``) without loading what runs in the child.
Both sides show an artifact the same way (``client_value``) and stand in for one that
cannot cross (``Unpicklable``).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..common.blobcache import DownloadProgress
from ..common.options import SpinOptions
from ..common.report import ArtifactRow, SpinError

if TYPE_CHECKING:
    from ..common.warmstore import TaskRef


def spin_kept_decorators() -> tuple[str, ...]:
    """Decorators a spin runs: Metaflow's own list for its spins (``conda``, ``pypi``,
    ``environment``, ``project``, ``timeout``, ``card``...; ``METAFLOW_SPIN_ALLOWED_DECORATORS``
    changes it, for devd as for ``python flow.py spin``); the rest belong to real runs."""
    from metaflow.metaflow_config import SPIN_ALLOWED_DECORATORS

    return tuple(SPIN_ALLOWED_DECORATORS)


@dataclass
class SpinRequest:
    """Everything a child needs to run one spin (picklable, for the spawn path too)."""

    flow_file: str
    cwd: str
    step: str
    origin_run_id: str
    input_paths: list[str]
    split_index: int | None
    # as asked: artifacts (applied after artifacts_module's), persist, debug, pdb...
    options: SpinOptions
    config_args: list[str]
    want_values: bool
    parent_refs: list[TaskRef] = field(default_factory=list)  # for the spawn path
    # spawn path: what the warm process holds of each parent (pathspec -> artifact names),
    # loaded by the spawned child before the step, as a forked child would inherit it
    warm_names: dict[str, list[str]] = field(default_factory=dict)
    want_private: bool = False  # also return _-prefixed artifacts (to chain spins)
    want_diff: bool = False  # content hashes of the artifacts, to diff with the recorded task
    data_files: list[str] = field(default_factory=list)  # Config files the flow reads
    # Config values already parsed (recorded in the run, or given as values): Metaflow
    # takes them as they are, as its own runtime does with ``kv.`` values, never re-parsed.
    config_values: dict[str, Any] = field(default_factory=dict)
    retry_count: int = 0  # current.retry_count: the recorded attempt a task's pathspec names
    resumed_from: str | None = None  # current.origin_run_id, as the recorded run has it
    run_tags: list[str] = field(default_factory=list)  # current.tags: the run's user tags

    @property
    def carries_objects(self) -> bool:
        """Whether it holds the caller's own objects (artifact or Config values given as
        objects): they cross to a child by value; the rest is devd's plain data."""
        return bool(self.options.artifacts or self.options.config_value or self.config_values)

    @property
    def config_overrides(self) -> bool:
        """Configs given to this spin (else every Config is the run's)."""
        return bool(self.options.config or self.options.config_value)

    def prepared_key(self) -> tuple[Any, ...]:
        """What a child prepared ahead of time has fixed: the rest may come with the request."""
        return (self.flow_file, self.cwd, self.step, self.origin_run_id,
                tuple(self.input_paths), self.split_index, tuple(self.config_args),
                _frozen(self.config_values), self.config_overrides, self.options.persist,
                tuple(self.data_files), self.retry_count, self.resumed_from,
                tuple(self.run_tags))


def _frozen(values: dict[str, Any]) -> Any:
    """Config values as something ``==`` compares safely (they may hold any object)."""
    try:
        return pickle.dumps(values, protocol=4)
    except Exception:  # noqa: BLE001 - any object's __reduce__ may raise: compare reprs
        return repr(values)


@dataclass
class Outdated:
    """What a prepared child answers when a source file changed since it imported the flow."""

    path: str


@dataclass
class ChildResult:
    """What a child reports of its spin: rows and pickled values, error, cards, timings."""

    ok: bool
    artifacts: list[ArtifactRow]
    values: dict[str, bytes]  # name -> pickled value (set in the step)
    parent_values: dict[str, tuple[str, str]]  # name -> (parent pathspec, artifact name)
    error: SpinError | None
    next_steps: list[str]
    run_id: str | None
    task_id: str | None
    persisted_root: str | None
    cards: list[dict[str, Any]]
    notices: list[str]
    duration_s: float
    phases: dict[str, float] = field(default_factory=dict)  # seconds, where the child spent
    card_html: list[dict[str, Any]] = field(default_factory=list)  # {id, type, html}
    hashes: dict[str, str | None] = field(default_factory=dict)  # name -> content sha1
    lazy_loaded: list[tuple[str, str]] = field(default_factory=list)  # warm these next
    kept: dict[str, str] = field(default_factory=dict)  # name -> how shown unchanged


@dataclass(frozen=True)
class CardUpdate:
    """A card's live update while the step runs (``current.card[...].refresh()``)."""

    entry: dict[str, Any]


@dataclass(frozen=True)
class DebugReady:
    """A debug spin's child listens for a DAP client at ``host:port`` (loopback)."""

    host: str
    port: int


# What a spin's child tells the process waiting for it while the step runs, as
# devd/core/events.py's events tell the engine's listeners.
ChildEvent = CardUpdate | DebugReady | DownloadProgress


class Unpicklable:
    """Stands in for an artifact that cannot leave the child (and so could not be persisted)."""

    def __init__(self, type_name: str, text: str, reason: str) -> None:
        self.type_name = type_name
        self.text = text
        self.reason = reason

    def __repr__(self) -> str:
        return f"<unpicklable {self.type_name}: {self.text} ({self.reason})>"


def client_value(name: str, value: Any) -> Any:
    """An artifact as Metaflow's Client gives it: an IncludeFile's content, not its handle."""
    from metaflow.includefile import IncludedFile

    if isinstance(value, IncludedFile):
        return value.decode(name)
    return value
