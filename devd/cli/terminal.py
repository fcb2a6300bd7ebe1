"""What the ``devd`` command writes to the terminal around a command: exit codes, a daemon's
notifications (output, progress, the debugger's address) as they come, and a reader that left
(``| head``) met quietly."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .client import Notification

EXIT_OK, EXIT_STEP_FAILED, EXIT_BAD_INPUT, EXIT_DAEMON = 0, 1, 2, 3


EXIT_INTERNAL = 4  # devd itself failed (a bug): one line; `devd --debug` shows the traceback


EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a writer killed by SIGPIPE


PIPE_CLOSED: list[bool] = []  # set once stdout's reader has gone


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def quietly(write: Callable[..., object], *args: object) -> None:
    try:
        write(*args)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()


def log_printer(stream: Callable[[str, str], None] | None) -> Notification:
    progress_line = None

    def on_notification(method: str, params: Any) -> None:
        nonlocal progress_line
        if method == "devd/log" and stream is not None and isinstance(params, dict):
            stream(params.get("stream", "stdout"), params.get("text", ""))
        elif method == "$/progress":
            if progress_line is None:
                from .progressline import ProgressLine

                progress_line = ProgressLine()
            progress_line.on_lsp_progress(params)
        elif method == "devd/debugReady" and isinstance(params, dict):
            print_debug_ready(params)

    return on_notification


def print_debug_ready(endpoint: dict[str, Any]) -> None:
    """On stderr (stdout may be --json): where a DAP client attaches to a --debug spin."""
    from ..common.debugging import describe

    print(f"devd: {describe(endpoint)}", file=sys.stderr, flush=True)


def echo(stream: str, text: str) -> None:
    target = sys.stdout if stream == "stdout" else sys.stderr
    try:
        target.write(text)
        target.flush()
    except BrokenPipeError:  # `| head` left: stop the spin as SIGPIPE would stop a tool
        import _thread
        import threading

        silence_stdout()
        if threading.current_thread() is threading.main_thread():
            raise
        PIPE_CLOSED.append(True)
        _thread.interrupt_main()  # the spin's own Ctrl-C path stops its child
