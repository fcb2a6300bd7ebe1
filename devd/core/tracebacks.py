"""Tracebacks as pytest and Jupyter show them: from the user's code on (issue 19).

A failed step's traceback runs through devd's child and Metaflow's task runner before it
reaches the step's own code; those frames are noise to the user, so the pane shows the
traceback without them (the full one folded behind 'show full traceback'). Metaflow's
``<flow F step S> failed:`` line, which only announces the traceback, goes too.
"""

from __future__ import annotations

import os
import re

_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+')
_ANNOUNCE = re.compile(r"^<flow \S+ step \S+> failed:?\s*$")


def _package_dir(name: str) -> str | None:
    try:
        module = __import__(name)
    except ImportError:
        return None
    path = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) + os.sep if path else None


def framework_dirs() -> tuple[str, ...]:
    """devd's and Metaflow's package directories: frames there are not the user's."""
    return tuple(d for d in (_package_dir("devd"), _package_dir("metaflow")) if d)


def without_announcement(text: str) -> str:
    """``text`` (a step's stderr) without Metaflow's ``<flow … step …> failed:`` lines."""
    if "> failed" not in text:
        return text
    return "".join(line for line in text.splitlines(keepends=True)
                   if not _ANNOUNCE.match(line.strip()))


def user_traceback(text: str, hidden: tuple[str, ...] | None = None) -> str:
    """``text`` without the frames in ``hidden`` directories (default: devd's and
    Metaflow's), each with its source and caret lines. Unchanged when it has no frame of
    the user's (then the framework's frames are all there is to see)."""
    hidden = framework_dirs() if hidden is None else hidden
    kept: list[str] = []
    user_frames = 0
    dropping = False
    for line in text.splitlines():
        frame = _FRAME.match(line)
        if frame:
            dropping = os.path.abspath(frame.group(1)).startswith(hidden)
            user_frames += not dropping
        elif dropping and line.startswith("    "):
            continue  # the dropped frame's code and caret lines
        else:
            dropping = False
        if not dropping and not _ANNOUNCE.match(line.strip()):
            kept.append(line)
    if not user_frames:
        return text
    return "\n".join(kept) + ("\n" if text.endswith("\n") else "")
