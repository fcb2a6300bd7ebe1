"""The outcome of one spin, as the Python API, the CLI and the daemon report it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..common.report import (
    ArtifactRow,
    CardInfo,
    SpinError,
    SplitInfo,
    StaleMark,
    StepEnvInfo,
    optional,
)


class Artifacts(Mapping[str, Any]):
    """Artifacts of a spun task: a read-only mapping whose passed-down parent values load
    on first access (a big parent artifact the step never read costs nothing until then).
    Compares equal to a dict with the same items."""

    def __init__(self, loaded: dict[str, Any],
                 deferred: dict[str, Callable[[], Any]] | None = None) -> None:
        self._loaded = dict(loaded)
        self._deferred = dict(deferred or {})

    def __getitem__(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        loader = self._deferred.pop(name, None)
        if loader is None:
            raise KeyError(name)
        self._loaded[name] = loader()
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self._loaded) | set(self._deferred)))

    def __len__(self) -> int:
        return len(set(self._loaded) | set(self._deferred))

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._deferred

    def is_loaded(self, name: str) -> bool:
        """Whether reading ``name`` costs nothing (it is not a parent value still on disk)."""
        return name in self._loaded

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        parts = [f"{k!r}: {self._loaded[k]!r}" if k in self._loaded else f"{k!r}: <not loaded>"
                 for k in self]
        return "{" + ", ".join(parts) + "}"

    def pop(self, name: str) -> Any:
        """Remove and return one artifact (tests compare what is left)."""
        value = self[name]
        del self._loaded[name]
        return value


@dataclass
class SpinResult:
    """Every public artifact of the spun task, its output, its error and where it goes next."""

    flow: str
    step: str
    ok: bool
    artifacts: Mapping[str, Any]
    artifact_rows: list[ArtifactRow]
    error: SpinError | None
    stdout: str
    stderr: str
    next_steps: list[str]
    duration_s: float
    parents: list[str]
    origin_run_id: str
    pathspec: str | None = None
    persisted: bool = False
    cards: list[str] = field(default_factory=list)
    card_components: list[dict[str, Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stale: list[StaleMark] = field(default_factory=list)
    # "user" (devd/cancel) or "superseded" (a newer spin of the step): stopped, not failed.
    cancelled: str | None = None
    # A foreach body: {index, count} of the split spun (its notice names its input).
    split: dict[str, int] | None = None
    _persist_root: str | None = None
    # Every value the task holds, _-prefixed ones included (to chain spins); not in its report.
    all_values: Mapping[str, Any] = field(default_factory=dict, repr=False)
    card_info: list[dict[str, Any]] = field(default_factory=list)  # {id, type} per card
    recorded_task: str | None = None  # the step's task in the run the parents come from
    recorded_ds: tuple[str, str] | None = None  # (ds-type, ds-root) of that run
    # Parent artifacts the step read that were not warm yet (loaded by the child itself).
    artifacts_loaded_by_step: list[str] = field(default_factory=list)
    artifact_hashes: dict[str, str | None] = field(default_factory=dict, repr=False)
    # Pickled size of the values the step set (the parents' own are the warm store's):
    # what keeping this result costs, with its output and cards (devd/core/engine.py).
    values_bytes: int = field(default=0, repr=False)
    # Big parent values the step read and left unchanged, passed down without a copy, with
    # what showed it: 'page map' or 'crc32' (devd/common/unchanged.py); not in its report.
    parents_kept: dict[str, str] = field(default_factory=dict, repr=False)
    # Values passed down unchanged from a parent: name -> (parent pathspec, its name there).
    # A warm worker sends these as such, not pickled: the daemon holds the same parents.
    passed_down: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    # A worker's spin only: the values as the step's child pickled them, which the worker
    # passes on to the daemon unread (devd/common/workerwire.py's ``portable``).
    value_blobs: dict[str, bytes] = field(default_factory=dict, repr=False)
    # Where the step ran when not in this interpreter: {name, python, version, worker}
    # (devd/core/stepenv.py; the warm worker that spun it, by pid).
    environment: dict[str, Any] | None = None

    @property
    def task(self) -> Any:
        """The persisted spin as a Metaflow Client ``Task`` (only with ``persist=True``)."""
        if not self.persisted or not self.pathspec:
            return None
        from metaflow import Task

        # Like inspect_spin(root), but without switching this process's global metadata.
        return Task(self.pathspec, _namespace_check=False,
                    _current_metadata=f"spin@{self._persist_root or '.'}")

    def report(self) -> SpinReport:
        """What the spin reports: the result of ``devd/spin``, what ``devd spin --json``
        prints (written camelCase by the protocol's converter)."""
        return SpinReport(
            ok=self.ok, flow=self.flow, step=self.step, pathspec=self.pathspec,
            persisted=self.persisted, duration_ms=round(self.duration_s * 1000, 1),
            artifacts=list(self.artifact_rows), stdout=self.stdout, stderr=self.stderr,
            error=self.error, next_steps=self.next_steps, parents=self.parents,
            origin_run_id=self.origin_run_id, notices=self.notices,
            timings_ms={k: round(v * 1000, 1) for k, v in self.timings.items()},
            cards=[CardInfo(i, **(self.card_info[i] if i < len(self.card_info) else {}),
                            html=html) for i, html in enumerate(self.cards)],
            recorded_task=self.recorded_task,
            stale=list(self.stale) or None,
            split=SplitInfo(**self.split) if self.split is not None else None,
            environment=StepEnvInfo(**self.environment) if self.environment is not None
            else None,
            cancelled=self.cancelled or None)  # type: ignore[arg-type]


@dataclass
class SpinReport:
    """The result of ``devd/spin``, and the params of ``devd/spinFinished``."""

    ok: bool
    flow: str | None = None
    step: str | None = None
    pathspec: str | None = None
    persisted: bool = False
    duration_ms: float = 0.0
    artifacts: list[ArtifactRow] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    error: SpinError | None = None
    next_steps: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    origin_run_id: str | None = None
    notices: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    cards: list[CardInfo] = field(default_factory=list)
    recorded_task: str | None = None
    stale: list[StaleMark] | None = optional(doc="present only when something is stale")
    split: SplitInfo | None = optional(doc="a foreach body: the split spun, of how many")
    environment: StepEnvInfo | None = optional(doc="present when the step ran in another "
                                               "interpreter than the daemon's")
    cancelled: Literal["user", "superseded"] | None = optional(
        doc="the spin was stopped (devd/cancel, or a newer spin of the step): not a failure")
