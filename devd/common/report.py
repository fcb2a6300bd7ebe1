"""The rows, marks and error a spin reports, declared once for both processes.

The child makes the artifact rows and the error, the core keeps them in its ``SpinResult``
and its report (devd/core/result.py), the CLI prints them and the protocol sends them as
they are: its converter writes the fields camelCase (devd/lsp/wire.py) and the extension's
TypeScript is generated from these classes. A field made with ``optional()`` is left out of
a report while it holds its default; every other field is always there (``null`` if unset).
"""

from __future__ import annotations

import dataclasses
from typing import Any


def optional(default: Any = None, doc: str = "") -> Any:
    """A field a report leaves out while it holds ``default``."""
    return dataclasses.field(default=default, metadata={"omit": True, "doc": doc})


def documented(doc: str, default: Any = dataclasses.MISSING) -> Any:
    """A field with a line of documentation (kept in the generated TypeScript)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclasses.dataclass(frozen=True)
class ArtifactRow:
    """One artifact as listed: its type and a short summary."""

    name: str
    type: str
    summary: str
    size_bytes: int | None = optional()


@dataclasses.dataclass(frozen=True)
class StaleMark:
    """A parent whose code changed since the run the spin's parents come from."""

    step: str
    reason: str


@dataclasses.dataclass(frozen=True)
class SpinError:
    """Why a request, a spin or a run failed: the one error shape of every devd method.

    ``type``: the exception's type (``ZeroDivisionError``) or devd's own: ``devd.BadRequest``
    (the request cannot be served as asked), ``devd.Cancelled``, ``devd.DebugTimeout``.
    """

    type: str
    message: str = documented("one line")
    file: str | None = optional(doc="the file the error is in (a step's failure: the flow "
                                    "file)")
    line: int | None = optional(doc="1-based line in `file`")
    traceback: str = optional("")

    @property
    def filename(self) -> str:
        """The file the error is in (the Python API's name for ``file``)."""
        return self.file or ""

    @property
    def lineno(self) -> int | None:
        """The line in it (the Python API's name for ``line``)."""
        return self.line

    def one_line(self) -> str:
        where = f"{self.filename}:{self.lineno}" if self.lineno else self.filename
        return f"{where}: {self.type}: {self.message}"

    @classmethod
    def of(cls, error: dict[str, Any]) -> SpinError:
        """The error a ``{type, message, file, line, traceback}`` mapping says."""
        return cls(str(error["type"]), str(error["message"]), error.get("file"),
                   error.get("line"), error.get("traceback") or "")


@dataclasses.dataclass(frozen=True)
class CardInfo:
    """A card of the spun task; ``html`` is left out for a client with ``cardHtml: false``."""

    index: int
    id: str | None = None
    type: str | None = None
    uuid: str | None = optional()
    html: str | None = optional()


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """The split of a foreach body a spin took (``devd/spin``'s ``split`` picks another)."""

    index: int
    count: int


@dataclasses.dataclass(frozen=True)
class StepEnvInfo:
    """Where a spin ran when it was not the daemon's interpreter (docs/usage.md,
    "Environments"): a warm worker of devd in the step's own environment."""

    name: str = documented("Metaflow's --environment (uv, pypi, conda) or the decorator that "
                           "moved the step (`@venv_step`)")
    python: str = documented("the interpreter the step ran in")
    version: str = documented("its Python version (`3.11`; empty when unknown)")
    worker: int | None = optional(doc="the pid of the warm worker that spun it")
