"""The engine's shared state under threads: watchdog's reporter against clients' requests.

File changes arrive on the watcher's thread while connections open sessions, release
flows and ask for status on theirs: every walk of the engine's tables must hold its lock.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devd.core.engine import Engine
from devd.core.events import EngineEvent, FileChanged

FLOWS = Path(__file__).parent / "flows"


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads as often as CPython can, so a window between two statements shows."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class YieldingLock:
    """The engine's lock, that lets other threads run right after each release: a thread
    that still reads the shared tables just after unlocking is caught doing it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> YieldingLock:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        time.sleep(0.0002)


def hammer(seconds: float, *loops: Callable[[], None]) -> list[BaseException]:
    """Run each loop body over and over in its own thread; the exceptions they raised."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def spin(body: Callable[[], None]) -> None:
        while not stop.is_set():
            try:
                body()
            except BaseException as exc:  # collected for the assertion
                errors.append(exc)
                stop.set()

    threads = [threading.Thread(target=spin, args=(body,), daemon=True) for body in loops]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    return errors


def test_file_changes_race_sessions_opening_and_closing(tmp_path: Path,
                                                        fast_switching: None) -> None:
    """Watchdog reports a change while another thread opens and releases the same flow:
    the change must find the session it listed, or none, never a KeyError half-way."""
    flow = tmp_path / "linear_flow.py"
    shutil.copy(FLOWS / "linear_flow.py", flow)
    engine = Engine(str(tmp_path), budget_bytes=1 << 20)
    engine._lock = YieldingLock()  # type: ignore[assignment]
    events: list[EngineEvent] = []
    engine.add_listener(events.append)

    def open_and_release() -> None:
        engine.session(str(flow))
        engine.release_flow(str(flow))

    def change() -> None:
        engine.file_changed(str(flow))

    def look() -> None:
        engine.status()
        engine.flows()
        engine.last_spins(str(flow))
        engine.forget_flow_file(str(flow))

    try:
        errors = hammer(3.0, open_and_release, change, change, look)
    finally:
        engine.close()
    assert not errors, f"{type(errors[0]).__name__}: {errors[0]}"
    assert any(isinstance(event, FileChanged) for event in events)
