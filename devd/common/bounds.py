"""Bounds on the text a spin's failure carries: its message, its traceback, its notices.

A step can raise with a message of any size, and its result goes to every client (each
editor, ``devd mcp``, ``devd spin --json``) and stays in the daemon as the step's last
spin. A message longer than ``MAX_MESSAGE_CHARS`` becomes one line of its first
characters; a traceback keeps its frames, each line at most ``MAX_LINE_CHARS``, and its
end, at most ``MAX_TRACEBACK_CHARS`` in all. What was cut is written whole to a private
file (next to a step's spilled output, devd/common/forking.py) that the cut names.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO, Any

MAX_MESSAGE_CHARS = 2000
MAX_LINE_CHARS = 2000
MAX_TRACEBACK_CHARS = 64_000


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` on one line (runs of white space made one space), at most ``limit``
    characters (the cut ends with an ellipsis)."""
    head = text[: limit * 4]  # no need to split megabytes to keep two thousand characters
    flat = " ".join(head.split())
    if len(flat) > limit or len(head) < len(text):
        return flat[: limit - 1] + "…"
    return flat


def private_file(prefix: str) -> IO[bytes]:
    """A new 0600 file in this user's 0700 folder under the temp dir (``.path`` names it)."""
    import stat

    folder = os.path.join(tempfile.gettempdir(), f"devd-output-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not stat.S_ISDIR(info.st_mode):
        folder = tempfile.gettempdir()  # someone else's or open: mkstemp's own safety only
    fd, path = tempfile.mkstemp(prefix=f"{prefix}-", suffix=".log", dir=folder)
    spill = os.fdopen(fd, "wb")
    spill.path = path  # type: ignore[attr-defined]
    return spill


def _keep_whole(text: str) -> str:
    """Where the full text is now: 'in PATH', or why it could not be kept (a full disk)."""
    spill = None
    try:
        spill = private_file("error")
        with spill:
            spill.write(text.encode("utf-8", "surrogateescape"))
        return f"in {spill.path}"  # type: ignore[attr-defined]
    except OSError as exc:
        if spill is not None:  # a full disk: no half file left behind
            try:
                os.unlink(spill.path)  # type: ignore[attr-defined]
            except OSError:
                pass
        return f"not kept ({exc.strerror or exc})"


def _bounded_traceback(text: str) -> str:
    lines = [line if len(line) <= MAX_LINE_CHARS
             else f"{line[:MAX_LINE_CHARS]}… [{len(line) - MAX_LINE_CHARS} more characters]"
             for line in text.split("\n")]
    out = "\n".join(lines)
    if len(out) > MAX_TRACEBACK_CHARS:  # the innermost frames and the message matter most
        head, tail = MAX_TRACEBACK_CHARS // 4, MAX_TRACEBACK_CHARS * 3 // 4
        out = f"{out[:head]}\n[… {len(out) - head - tail} characters left out …]\n" \
              f"{out[-tail:]}"
    return out


def needs_bounds(error: dict[str, Any]) -> bool:
    message, trace = str(error.get("message") or ""), str(error.get("traceback") or "")
    if len(message) > MAX_MESSAGE_CHARS or len(trace) > MAX_TRACEBACK_CHARS:
        return True
    return len(trace) > MAX_LINE_CHARS and any(len(line) > MAX_LINE_CHARS
                                               for line in trace.split("\n"))


def bound_error(error: dict[str, Any]) -> dict[str, Any]:
    """An error ``{type, message, file, line, traceback}`` within the bounds above; when
    something was cut, the message says where the whole message and traceback are."""
    if not needs_bounds(error):
        return error
    message, trace = str(error.get("message") or ""), str(error.get("traceback") or "")
    # A traceback ends with the message already (once is enough on disk).
    whole = trace if message and trace.rstrip().endswith(message.rstrip()) \
        else f"{error.get('type')}: {message}\n\n{trace}"
    where = _keep_whole(whole)
    cut = len(message) > MAX_MESSAGE_CHARS
    note = (f" [devd: message cut at {MAX_MESSAGE_CHARS} of {len(message)} characters; "
            f"the full text is {where}]") if cut else \
        f" [devd: traceback cut; the full text is {where}]"
    bounded = dict(error)
    if cut:
        bounded["message"] = one_line(message) + note
    bounded["traceback"] = _bounded_traceback(trace) + (
        "" if trace.endswith("\n") else "\n") + note.strip() + "\n"
    return bounded


def max_card_bytes() -> int:
    """``DEVD_MAX_CARD_MB`` (default 32): what all of one spin's card pages may weigh in an
    answer together (Metaflow's own card page is ~1.3 MB of scripts before any content)."""
    try:
        return int(float(os.environ.get("DEVD_MAX_CARD_MB", "32")) * (1 << 20))
    except ValueError:
        return 32 << 20


def bound_cards(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spin's rendered cards, each kept whole while all of them together stay within
    ``max_card_bytes()``; a card past it is answered as a short page naming its size and
    the private file that holds it whole (open that in a browser)."""
    limit, used, out = max_card_bytes(), 0, []
    for card in cards:
        html = card.get("html") or ""
        size = len(html.encode("utf-8", "surrogateescape"))
        if used + size <= limit:
            used += size
            out.append(card)
            continue
        where = "not kept: the disk is full"
        try:
            spill = private_file("card")
            with spill:
                spill.write(html.encode("utf-8", "surrogateescape"))
            where = f"whole in {spill.path}"  # type: ignore[attr-defined]
        except OSError as exc:
            where = f"not kept ({exc.strerror or exc})"
        from html import escape

        note = (f"<!doctype html><meta charset='utf-8'><p>devd: this card is "
                f"{size / (1 << 20):.1f} MB, past the {limit / (1 << 20):.0f} MB that one "
                f"spin's cards may weigh together (DEVD_MAX_CARD_MB); it is "
                f"{escape(where)}.</p>")
        out.append({**card, "html": note})
    return out
