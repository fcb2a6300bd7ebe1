"""Watch flow files, their Config files and artifacts modules; tell the engine on change.

Changes are debounced: an editor's save is several file system events (and a formatter on
save, or a script rewriting a file in a loop, many more); each watched file is reported
once it has been quiet for ``DEBOUNCE_S``, and at least every ``MAX_DELAY_S`` while it
keeps changing. A deleted file is reported too (the engine then releases its flow).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("devd.watch")

DEBOUNCE_S = 0.1
MAX_DELAY_S = 0.5
_EVENTS = ("modified", "created", "moved", "closed", "deleted")


class FileWatcher(FileSystemEventHandler):
    """Calls ``on_change(path)`` when a watched file is written, created, moved into place,
    moved away or deleted: once per burst of events (see the module's docstring)."""

    def __init__(self, on_change: Callable[[str], None]) -> None:
        self._on_change = on_change
        self._files: set[str] = set()
        self._dirs: set[str] = set()
        self._lock = threading.Lock()
        self._observer = Observer()
        self._observer.daemon = True
        self._started = False
        self._pending: dict[str, tuple[float, float]] = {}  # path: (first, last) event
        self._wake = threading.Condition(self._lock)
        self._stopped = False
        self._reporter: threading.Thread | None = None

    def watch(self, path: str) -> None:
        path = os.path.realpath(path)
        directory = os.path.dirname(path)
        with self._lock:
            self._files.add(path)
            if directory not in self._dirs and os.path.isdir(directory):
                self._observer.schedule(self, directory, recursive=False)
                self._dirs.add(directory)
            if not self._started:
                self._observer.start()
                self._reporter = threading.Thread(target=self._report, daemon=True,
                                                  name="devd-watch-report")
                self._reporter.start()
                self._started = True

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _EVENTS:
            return
        now = time.monotonic()
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            path = os.path.realpath(os.fsdecode(raw))
            with self._lock:
                if path in self._files:
                    first = self._pending.get(path, (now, now))[0]
                    self._pending[path] = (first, now)
                    self._wake.notify()

    def _report(self) -> None:
        """Hand each quiet (or long-changing) file to ``on_change``, off watchdog's thread."""
        while True:
            with self._lock:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    due = {p: min(last + DEBOUNCE_S, first + MAX_DELAY_S)
                           for p, (first, last) in self._pending.items()}
                    ready = sorted(p for p, at in due.items() if at <= now)
                    if ready:
                        for path in ready:
                            del self._pending[path]
                        break
                    self._wake.wait(min(due.values()) - now if due else None)
            for path in ready:
                try:
                    self._on_change(path)
                except Exception:  # an exception here would end the reporting thread
                    log.exception("handling a change of %s failed", path)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify()
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=2)
