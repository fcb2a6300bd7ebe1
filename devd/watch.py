"""Watch flow files, their Config files and artifacts modules; tell the engine on change."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("devd.watch")


class FileWatcher(FileSystemEventHandler):
    """Calls ``on_change(path)`` when a watched file is written, created or moved into place."""

    def __init__(self, on_change: Callable[[str], None]) -> None:
        self._on_change = on_change
        self._files: set[str] = set()
        self._dirs: set[str] = set()
        self._lock = threading.Lock()
        self._observer = Observer()
        self._observer.daemon = True
        self._started = False

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
                self._started = True

    @property
    def files(self) -> list[str]:
        with self._lock:
            return sorted(self._files)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("modified", "created", "moved", "closed"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        for raw in paths:
            if not raw:
                continue
            path = os.path.realpath(os.fsdecode(raw))
            if path in self._files:
                try:
                    self._on_change(path)
                except Exception:  # an exception here would end watchdog's thread
                    log.exception("handling a change of %s failed", path)

    def stop(self) -> None:
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=2)
