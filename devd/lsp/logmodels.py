"""The wire form of ``devd/taskLogs``: a recorded task's stdout and stderr, their end
(devd/core/tasklogs.py reads them through Metaflow's Client, bounded)."""

from __future__ import annotations

import attrs

from .spinmodels import ErrorInfo
from .wire import opt, req, sent


@attrs.define
class TaskLogsParams:
    """``devd/taskLogs``: the end of a recorded task's logs (``devd mcp``'s logs tool)."""

    uri: str = req(hint="the flow file")
    pathspec: str = req(hint="the task, Flow/RUN/STEP/TASK")
    stream: str | None = opt(doc="stdout or stderr; both when absent")
    tail: int | None = opt(doc="the last this many lines of each (default 200, at most 10,000)")


@attrs.define
class TaskLog:
    """One stream's end: whole lines, at most 64,000 characters."""

    stream: str = req(doc="stdout or stderr")
    text: str = req()
    lines: int = req(doc="lines in the whole stream")
    left_out: int = req(doc="lines before `text`")


@attrs.define
class TaskLogsResult:
    """``devd/taskLogs``; ``ok`` false with ``error`` for an unknown task or stream."""

    ok: bool = req()
    pathspec: str | None = sent()
    logs: list[TaskLog] = sent(list)
    error: ErrorInfo | None = opt()
