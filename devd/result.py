"""The outcome of one spin, as the Python API, the CLI and the daemon report it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SpinError:
    """Why the step failed: where in the flow file, and the full traceback."""

    type: str
    message: str
    filename: str
    lineno: int | None
    traceback: str

    def one_line(self) -> str:
        where = f"{self.filename}:{self.lineno}" if self.lineno else self.filename
        return f"{where}: {self.type}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "file": self.filename,
                "line": self.lineno, "traceback": self.traceback}


@dataclass
class SpinResult:
    """Every public artifact of the spun task, its output, its error and where it goes next."""

    flow: str
    step: str
    ok: bool
    artifacts: dict[str, Any]
    artifact_rows: list[dict[str, Any]]
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
    stale: list[dict[str, str]] = field(default_factory=list)
    _persist_root: str | None = None
    # Every value the task holds, _-prefixed ones included (to chain spins); not in to_json.
    all_values: dict[str, Any] = field(default_factory=dict, repr=False)
    card_info: list[dict[str, Any]] = field(default_factory=list)  # {id, type} per card
    recorded_task: str | None = None  # the step's task in the run the parents come from
    artifact_hashes: dict[str, str | None] = field(default_factory=dict, repr=False)

    @property
    def task(self) -> Any:
        """The persisted spin as a Metaflow Client ``Task`` (only with ``persist=True``)."""
        if not self.persisted or not self.pathspec:
            return None
        from metaflow import Task

        # Like inspect_spin(root), but without switching this process's global metadata.
        return Task(self.pathspec, _namespace_check=False,
                    _current_metadata=f"spin@{self._persist_root or '.'}")

    def to_json(self) -> dict[str, Any]:
        """The shape of the ``devd/spin`` result and of ``devd spin --json``."""
        data: dict[str, Any] = {
            "ok": self.ok,
            "flow": self.flow,
            "step": self.step,
            "pathspec": self.pathspec,
            "persisted": self.persisted,
            "durationMs": round(self.duration_s * 1000, 1),
            "artifacts": self.artifact_rows,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": self.error.to_json() if self.error else None,
            "nextSteps": self.next_steps,
            "parents": self.parents,
            "originRunId": self.origin_run_id,
            "notices": self.notices,
            "timingsMs": {k: round(v * 1000, 1) for k, v in self.timings.items()},
            "cards": [{"index": i, **(self.card_info[i] if i < len(self.card_info) else {}),
                       "html": html} for i, html in enumerate(self.cards)],
            "recordedTask": self.recorded_task,
        }
        if self.stale:
            data["stale"] = self.stale
        return data
