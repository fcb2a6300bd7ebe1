"""User-facing errors: one line that names the problem and the next thing to do."""

from __future__ import annotations


class DevdError(Exception):
    """A problem with the user's input or setup, reported as one clear line (no traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
