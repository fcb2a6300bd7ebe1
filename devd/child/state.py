"""What the parts of one child share: its one spin's state, its phase marks, its output.

A child runs one spin and exits, and Metaflow calls back into devd from inside its own
code (the hidden CLI command, the card creator, the datastore's ``persist``): module-level
state is how those callbacks find the spin they belong to.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, ClassVar

from .request import ChildResult, Outdated, SpinRequest

if TYPE_CHECKING:
    from ..common.warmstore import WarmFlowDataStore, WarmTask
    from .persist import Staging


class State:
    """The spin this child runs, as far as it got (one per process: class attributes)."""

    request: ClassVar[SpinRequest]
    marks: ClassVar[list[tuple[str, float]]] = []
    flow: ClassVar[Any] = None
    run_id: ClassVar[str | None] = None
    task_id: ClassVar[str | None] = None
    created_at: ClassVar[Any] = None
    spin_artifacts: ClassVar[dict[str, Any]] = {}
    join_artifacts: ClassVar[dict[str, dict[str, Any]]] = {}
    warm: ClassVar[WarmFlowDataStore]
    warm_tasks: ClassVar[list[WarmTask]]
    result: ClassVar[ChildResult | Outdated | None] = None
    cards: ClassVar[list[dict[str, Any]]] = []
    # wait for the request after set-up (see Session's prepared child)
    prepared: ClassVar[bool] = False
    # (path, mtime_ns, size) of what the child read
    stamps: ClassVar[list[tuple[str, int, int]]] = []
    # with --persist: where the task is written until it is published (devd/child/persist.py)
    staging: ClassVar[Staging | None] = None
    # a throwaway spin's datastore folder, removed when the child ends (devd/common/scratch.py)
    scratch: ClassVar[str | None] = None

def mark(name: str) -> None:
    """End the phase ``name`` now (the result's ``phases`` are the gaps between marks)."""
    State.marks.append((name, time.perf_counter()))


class Tee:
    """Keeps what the step prints (for the card's stdout/stderr) and passes it on."""

    def __init__(self, stream: Any) -> None:
        from ..common.forking import max_output_bytes

        self.stream = stream
        self.text: list[str] = []
        self._room = max_output_bytes()  # as the parent keeps: the card shows no more

    def write(self, text: str) -> int:
        if self._room > 0:
            kept = text[:self._room]
            self.text.append(kept)
            self._room -= len(kept)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def report_problem(what: str, exc: BaseException) -> None:
    """One line on the child's stderr for a failure the spin survives (a card that did not
    render, say), past the step's own captured output: the spin's output shows it."""
    stream = sys.stderr.stream if isinstance(sys.stderr, Tee) else sys.stderr
    stream.write(f"devd: {what}: {type(exc).__name__}: {exc}\n")
    stream.flush()
