"""daemon.log: size-capped, rotated, and never flooded by repeated messages.

A client sending 10,000 invalid requests, or a machine out of file descriptors making
every accept() fail, must not grow the log without bound. Three things see to it:

* the file rolls over at ``DEVD_LOG_MAX_BYTES`` (default 1 MiB) to ``daemon.log.1``, one
  backup kept; file descriptors 1 and 2 follow the current file, so what C code, the
  interpreter or a stray ``print`` writes is capped with the rest;
* every logger goes through a :class:`Throttle`: a message (its template, so not each
  formatted variant) is written a few times per minute, then counted and summarised;
* warnings and uncaught thread exceptions go through logging too.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
import time
from typing import Any

DEFAULT_MAX_BYTES = 1 << 20


def max_bytes_default() -> int:
    try:
        return max(int(os.environ.get("DEVD_LOG_MAX_BYTES", DEFAULT_MAX_BYTES)), 4096)
    except ValueError:
        return DEFAULT_MAX_BYTES


class Throttle:
    """Allow ``burst`` occurrences of each key per ``window`` seconds; count the rest."""

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        self.burst = burst
        self.window = window
        self._lock = threading.Lock()
        self._seen: dict[Any, list[float | int]] = {}  # key -> [window start, count]

    def allow(self, key: Any) -> tuple[bool, int]:
        """(write it?, how many were suppressed since the last one written)."""
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.window:
                suppressed = max(int(entry[1]) - self.burst, 0) if entry else 0
                self._seen[key] = [now, 1]
                if len(self._seen) > 10_000:  # keys are code's templates: never this many
                    self._seen.clear()
                return True, suppressed
            entry[1] += 1
            return entry[1] <= self.burst, 0


class _ThrottleFilter(logging.Filter):
    def __init__(self, throttle: Throttle) -> None:
        super().__init__()
        self.throttle = throttle

    def filter(self, record: logging.LogRecord) -> bool:
        ok, suppressed = self.throttle.allow((record.name, record.levelno, str(record.msg)))
        if ok and suppressed:
            record.msg = f"{record.msg} [{suppressed} more like this in the last minute]"
        return ok


class _CappedFile(logging.handlers.RotatingFileHandler):
    """Rolls over by size; fds 1 and 2 always point at the current file."""

    def __init__(self, path: str, max_bytes: int, redirect_fds: bool) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=1, encoding="utf-8")
        self.redirect_fds = redirect_fds
        self._point_fds()

    def _point_fds(self) -> None:
        if not self.redirect_fds or self.stream is None:
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        fd = self.stream.fileno()
        os.dup2(fd, 1)
        os.dup2(fd, 2)

    def doRollover(self) -> None:  # logging's name
        super().doRollover()
        self._point_fds()


def setup(path: str, max_bytes: int | None = None, redirect_fds: bool = True,
          level: int = logging.WARNING) -> logging.Handler:
    """Log the daemon to ``path``, capped and throttled (see the module's doc)."""
    handler = _CappedFile(path, max_bytes or max_bytes_default(), redirect_fds)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(_ThrottleFilter(Throttle()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)

    def thread_exception(args: threading.ExceptHookArgs) -> None:
        logging.getLogger("devd.thread").error(
            "uncaught exception in thread %s", getattr(args.thread, "name", "?"),
            exc_info=args.exc_value)

    threading.excepthook = thread_exception
    return handler
