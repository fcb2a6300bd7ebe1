"""The last spin of each step, kept by the engine: its result for the editor and the CLI, its
values to chain the next steps on (``fromSpin``), and what keeping it costs against the
memory budget (past it, the older spins give up their output and cards first)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..common.unchanged import fingerprints
from ..common.warmstore import TaskRef, WarmTask
from .result import SpinResult


@dataclass
class SpinRecord:
    """The last spin of a step: its result, every value it holds, and its code at the time."""

    result: SpinResult
    sources: dict[str, str]
    finished_at: float
    seq: int
    good: SpinResult | None = None  # the last successful result (values to chain on)
    # the step's code when this result was made: a failure is not reported against code that
    # has changed since (the editor's diagnostic goes when the failing lines do)
    spun_source: str | None = None
    _chain: WarmTask | None = None

    def chain_task(self, flow_name: str) -> WarmTask | None:
        """The last successful spin as a parent task for a chained spin (built on demand)."""
        if self.good is None:
            return None
        if self._chain is None:
            values = dict(self.good.all_values)  # loads passed-down values not read yet
            ref = TaskRef(flow_name, f"devd-spin-{self.seq}", self.good.step, "1", 0,
                          "devd-spin", "")
            self._chain = WarmTask(ref, _ChainDataStore(values, self.seq), values, 0, 0.0,
                                   fingerprints=fingerprints(values))
        return self._chain


_SHED = ("[devd: this output was dropped to keep the daemon within its memory budget "
         "(DEVD_BUDGET_MB); spin the step again to see it]\n")
_SHED_CARD = f"<!doctype html><p>{_SHED.strip()}</p>"


def _result_bytes(result: SpinResult) -> int:
    """What keeping a result costs: its output, cards, error text and the values the step
    set (characters counted as bytes)."""
    error = result.error
    return (len(result.stdout) + len(result.stderr) + sum(len(c) for c in result.cards)
            + (len(error.message) + len(error.traceback) if error else 0)
            + result.values_bytes)


def records_bytes(records: Iterable[SpinRecord]) -> int:
    """Every kept result once (a failed spin's record shares the last good one)."""
    seen: dict[int, SpinResult] = {}
    for record in records:
        for result in (record.result, record.good):
            if result is not None:
                seen[id(result)] = result
    return sum(_result_bytes(r) for r in seen.values())


def shed_output(record: SpinRecord) -> int:
    """Drop a kept spin's output and card pages (its values stay, to chain on); the bytes
    freed."""
    freed = 0
    for result in {id(r): r for r in (record.result, record.good) if r is not None}.values():
        before = _result_bytes(result)
        if result.stdout or result.stderr:
            result.stdout = _SHED if result.stdout else ""
            result.stderr = _SHED if result.stderr else ""
        result.cards = [_SHED_CARD for _ in result.cards]
        freed += max(before - _result_bytes(result), 0)
    return freed


class _ChainDataStore:
    """What Metaflow's task runner needs of a parent datastore, for a spin's own output."""

    TYPE = "devd-spin"

    def __init__(self, values: dict[str, Any], seq: int) -> None:
        self._objects = {name: f"devd-spin-{seq}-{name}" for name in values}
        self._info = {name: {"size": 0, "type": type(v).__name__, "encoding": "memory"}
                      for name, v in values.items()}
