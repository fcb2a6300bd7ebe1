"""Where a step failed, as an agent reads it: a spin's error as ``file:line: Type: message``
with its source line, a traceback from its first frame of the user's own code, and the
failing step, line and exception found in a failed run's output (``devd mcp``'s answers)."""

from __future__ import annotations

import os
import re
from typing import Any

from .agent import shown_path, source_line

_FRAME_LINE = re.compile(r'^  File "(?P<file>[^"]+)", line \d+')


def user_frames(traceback: str) -> str:
    """A traceback from its first frame outside devd and Metaflow: the frames above it
    (devd's child running Metaflow's task runner) are the same in every spin."""
    import importlib.util

    if traceback.count("Traceback (most recent call last):") != 1:
        return traceback  # chained exceptions: every part may matter
    spec = importlib.util.find_spec("metaflow")
    ours = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep]  # devd/
    if spec is not None and spec.origin:
        ours.append(os.path.dirname(spec.origin) + os.sep)
    lines = traceback.splitlines()
    for i, line in enumerate(lines):
        frame = _FRAME_LINE.match(line)
        if frame and not frame["file"].startswith(tuple(ours)):
            head = lines[:1] if i > 0 and lines[0].startswith("Traceback") else []
            return "\n".join(head + lines[i:]) + "\n"
    return traceback


def error_line(error: dict[str, Any], root: str) -> str:
    file, line = error.get("file"), error.get("line")
    where = (shown_path(file, root) + (f":{line}" if line else "") + ": ") if file else ""
    text = f"{where}{error.get('type')}: {error.get('message')}"
    source = error.get("source") or source_line(file, line)
    return text + (f"\n    {source}" if source else "")


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ (?:\[[^\]]*\] ?)?")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<fn>\S+))?')
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*): ?(?P<message>.*)$")
_TASK_TAG = re.compile(r"\[(?P<run>[^/\]\s]+)/(?P<step>[^/\]\s]+)/(?P<task>[^\]\s]+)")


def run_failure(output: str, flow_path: str, root: str) -> dict[str, Any] | None:
    """Where a failed run's step failed: the innermost frame in the flow file of the last
    traceback in Metaflow's output, and the exception under it."""
    raw = output.splitlines()
    lines = [_LOG_PREFIX.sub("", line) for line in raw]
    found = None
    for i, line in enumerate(lines):
        match = _FRAME.match(line)
        if match and os.path.abspath(match["file"]) == flow_path:
            found = (i, match)
    if found is None:
        return None
    index, frame = found
    failure: dict[str, Any] = {"file": frame["file"], "line": int(frame["line"]),
                               "where": f"{shown_path(frame['file'], root)}:{frame['line']}",
                               "source": source_line(frame["file"], int(frame["line"]))}
    tag = _TASK_TAG.search(raw[index])  # Metaflow tags a task's lines [RUN/STEP/TASK (pid)]
    failure["step"] = tag["step"] if tag else frame["fn"]
    for line in lines[index + 1:]:
        if _FRAME.match(line):
            continue
        exc = _EXCEPTION.match(line.strip())
        if exc and not line.startswith((" ", "\t")) and exc["type"][0].isupper():
            failure["type"], failure["message"] = exc["type"], exc["message"]
            break
    return failure
