"""One progress line on stderr for work that takes over a second (parents downloading).

On a terminal the line is rewritten in place; elsewhere (a pipe, a log) one line is
written when the work ends, so scripts reading stderr see what took the time.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # not `typing`: the CLI's fast path imports this module
if TYPE_CHECKING:
    from typing import TextIO

DELAY_S = 1.0


class ProgressLine:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.started: float | None = None
        self.message = ""
        self.shown = False

    def update(self, message: str) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        self.message = message
        if now - self.started < DELAY_S or not self._tty():
            return
        self._write(f"\r\x1b[2K{message} ({now - self.started:.0f} s)")
        self.shown = True

    def done(self) -> None:
        if self.started is None:
            return
        elapsed = time.monotonic() - self.started
        if self.shown:
            self._write("\r\x1b[2K")
        if elapsed >= DELAY_S:
            self._write(f"devd: {self.message} in {elapsed:.1f} s\n")
        self.started = None
        self.shown = False

    def on_lsp_progress(self, params: object) -> None:
        """A ``$/progress`` notification's params (begin, report or end)."""
        value = params.get("value") if isinstance(params, dict) else None
        if not isinstance(value, dict):
            return
        if value.get("kind") == "end":
            self.done()
        elif value.get("message"):
            self.update(str(value["message"]))

    def on_progress(self, done: int, total: int, message: str) -> None:
        self.update(message)

    def _tty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass
