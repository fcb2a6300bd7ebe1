"""A recorded task's stdout and stderr, read through Metaflow's Client: the end of each,
bounded in lines and characters (a task may log gigabytes; an answer stays small)."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from ..common.errors import DevdError

MAX_LINES = 10_000  # the most lines a caller may ask for
MAX_CHARS = 64_000  # characters of each stream an answer keeps (its end)
STREAMS = ("stdout", "stderr")


@dataclass
class StreamTail:
    """The last lines of one stream, and how much of it was left out."""

    text: str
    lines: int  # lines in the whole stream
    left_out: int  # lines before ``text``


def task_logs(pathspec: str, streams: tuple[str, ...] = STREAMS, tail: int = 200,
              max_chars: int = MAX_CHARS) -> dict[str, StreamTail]:
    """The last ``tail`` lines (at most ``max_chars`` characters) of each stream of the
    recorded task ``pathspec`` (its latest attempt, as Metaflow's ``Task.stdout``)."""
    from metaflow import Task
    from metaflow.exception import MetaflowNotFound

    unknown = [s for s in streams if s not in STREAMS]
    if unknown:
        raise DevdError(f"no log stream '{unknown[0]}': use stdout or stderr")
    if not 1 <= tail <= MAX_LINES:
        raise DevdError(f"tail must be 1 to {MAX_LINES} lines, not {tail}")
    if len([p for p in pathspec.split("/") if p]) != 4:
        raise DevdError(f"'{pathspec}' is not a task: use Flow/RUN/STEP/TASK (from `devd "
                        "graph`, the runs explorer or a run's tasks)")
    try:
        task = Task(pathspec, _namespace_check=False)
        meta = task.metadata_dict
    except MetaflowNotFound:
        raise DevdError(f"no task {pathspec}; pick one from `devd graph` or the runs "
                        "explorer") from None
    return {stream: _tail(task, stream, meta, tail, max_chars) for stream in streams}


def _tail(task: Any, stream: str, meta: dict[str, Any], tail: int, max_chars: int) -> StreamTail:
    if meta.get(f"log_location_{stream}"):  # a run of a Metaflow before mflog: one blob
        lines: Any = getattr(task, stream).splitlines()
        total = len(lines)
        last = collections.deque(lines, maxlen=tail)
    else:  # line by line: only the last ``tail`` are kept
        total = 0
        last = collections.deque(maxlen=tail)
        for _when, line in task.loglines(stream, meta_dict=meta):
            total += 1
            last.append(line)
    text = "".join(line + "\n" for line in last)
    kept = len(last)
    while len(text) > max_chars and len(last) > 1:  # whole lines, the newest kept
        text = text[len(last.popleft()) + 1:]
        kept -= 1
    if len(text) > max_chars:  # one line longer than the bound: its end
        text = text[-max_chars:]
    return StreamTail(text, total, total - kept)
