"""Stale parents: which steps' code changed since the run (or the spin) a spin's parents
come from, told by a hash of each step's source lines."""

from __future__ import annotations

import hashlib
import os
import threading

from ..common.report import StaleMark
from .flowmodel import FlowModel

_hashed: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}


def step_source_hashes(model: FlowModel) -> dict[str, str]:
    """A hash of each step's source lines, to tell when a step's code changed (read again
    only when the file or the model changed: every spin asks, twice)."""
    try:
        st = os.stat(model.path)
        key = (st.st_mtime_ns, st.st_size, id(model))
    except OSError:
        key = (0, 0, 0)
    cached = _hashed.get(model.path)
    if cached is not None and cached[0] == key and key[0]:
        return dict(cached[1])
    with open(model.path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    hashes = {}
    for name, info in model.steps.items():
        text = "\n".join(lines[info.start_line - 1 : info.end_line])
        hashes[name] = hashlib.sha1(text.encode()).hexdigest()
    _hashed[model.path] = (key, hashes)
    return dict(hashes)


def _changed_since_run(step: str, run_id: str | None) -> StaleMark:
    return StaleMark(step, f"code of step '{step}' changed since run {run_id}")


class RunSources:
    """Each step's code as it was in each run of each flow: as the daemon first saw it, or
    recorded when the daemon ran the flow itself."""

    def __init__(self) -> None:
        self._sources: dict[tuple[str, str | None], dict[str, str]] = {}
        self._lock = threading.Lock()

    def record(self, flow_file: str, run_id: str, sources: dict[str, str]) -> None:
        """The daemon ran the flow: its steps' code is what it ran with."""
        with self._lock:
            self._sources[(flow_file, run_id)] = sources

    def _recorded(self, flow_file: str, run_id: str | None,
                  now: dict[str, str]) -> dict[str, str]:
        with self._lock:
            return self._sources.setdefault((flow_file, run_id), now)

    def changed(self, model: FlowModel, flow_file: str, run_id: str) -> set[str]:
        """The steps whose code changed since ``run_id``."""
        now = step_source_hashes(model)
        recorded = self._recorded(flow_file, run_id, now)
        return {s for s in model.steps if s in recorded and recorded[s] != now.get(s)}

    def stale_parents(self, model: FlowModel, flow_file: str, run_id: str | None,
                      step: str) -> list[StaleMark]:
        """Upstream steps of ``step`` whose code changed since the run the parents come from."""
        now = step_source_hashes(model)
        recorded = self._recorded(flow_file, run_id, now)
        return [_changed_since_run(s, run_id) for s in model.ancestors(step)
                if s in recorded and recorded[s] != now.get(s)]

    def stale_steps(self, model: FlowModel,
                    flow_file: str) -> dict[str, list[StaleMark]]:
        """For each step, the upstream steps changed since the run its parents come from."""
        with self._lock:
            runs = [(run_id, recorded) for (p, run_id), recorded in self._sources.items()
                    if p == flow_file]
        now = step_source_hashes(model)
        marks: dict[str, list[StaleMark]] = {}
        for run_id, recorded in runs:
            changed = [s for s in model.steps if s in recorded and recorded[s] != now.get(s)]
            for step in model.steps:
                ups = [s for s in model.ancestors(step) if s in changed]
                if ups:
                    marks[step] = [_changed_since_run(s, run_id) for s in ups]
        return marks
