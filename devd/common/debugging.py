"""Debugging a spun step: debugpy in the spin's child, or pdb in the terminal's process.

Everything here runs in the process that runs the step (a forked child, or the CLI's own
process for ``--pdb``): the warm process never imports debugpy. The child listens on a
loopback port only, lets only its owner's connections through (devd/common/debuggate.py),
tells the requester where (``debugReady``), waits for a DAP client
(VS Code, PyCharm, nvim-dap...) for a bounded time, runs the step under it, and ends the
debug session cleanly before its result goes back, so the client sees ``terminated``.
"""

from __future__ import annotations

import os
import sys
import threading
from types import FrameType
from typing import Any, ClassVar

# Loopback only: a debugger runs any code it likes in the step's process.
HOST = "127.0.0.1"


class DebugTimeout(Exception):
    """Nobody attached to a debug spin in time: the spin ends without running the step."""


class _Listening:
    endpoint: tuple[str, int] | None = None


def quiet_pydevd() -> None:
    """Python's frozen stdlib modules make pydevd print a warning when it is imported."""
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def preload_in_background() -> threading.Thread:
    """Import debugpy on a thread of this (prepared, idle) child while it waits for its
    request: a debug spin then starts listening without paying for the import (0.05-0.5 s,
    the bulk of its start). Only ever in a child, never in the warm process; it only
    imports (no tracing, no port) and a failed import is left for ``listen`` to report."""

    quiet_pydevd()

    def load() -> None:
        try:
            import debugpy.server.api  # noqa: F401 - and, through it, pydevd
            import pydevd  # noqa: F401
        except ImportError:
            pass

    thread = threading.Thread(target=load, name="devd-debugpy-import", daemon=True)
    thread.start()
    return thread


def listen() -> tuple[str, int]:
    """Start debugpy's adapter in this process on a free loopback port; ``(host, port)``."""
    quiet_pydevd()
    try:
        import debugpy
    except ImportError:
        from .errors import DevdError

        raise DevdError("debugging a spin needs debugpy: pip install debugpy "
                        f"(into {sys.executable})") from None
    # The step runs on the thread that forked this child, a daemon thread of the warm
    # process: pydevd ends a session once only daemon threads are left unless one is
    # marked as its main thread (its own marker, which it sets on the real main thread).
    setattr(threading.current_thread(), "__pydevd_main_thread", True)
    from .debuggate import install

    install()  # only the owner's connections reach debugpy (devd/common/debuggate.py)
    _skip_environment_report()
    host, port = debugpy.listen((HOST, 0), in_process_debug_adapter=True)
    _count_paused()
    _Listening.endpoint = (str(host), int(port))
    return _Listening.endpoint


def _skip_environment_report() -> None:
    """debugpy's first call describes the environment for its log, reading the metadata of
    every installed distribution (0.1-0.3 s with a hundred; more in bigger environments),
    even when it logs nowhere. Skipped then; with DEBUGPY_LOG_DIR set it runs as usual."""
    try:
        from debugpy.common import log as debugpy_log
        from debugpy.server import api
    except ImportError:
        return
    ensure = getattr(api, "ensure_logging", None)
    if ensure is not None and getattr(debugpy_log, "log_dir", "") is None:
        ensure.ensured = True


def wait_for_client(timeout: float) -> None:
    """Block until a DAP client attached and finished configuring (its breakpoints are
    set), or raise DebugTimeout after ``timeout`` seconds."""
    import debugpy

    timer = threading.Timer(timeout, debugpy.wait_for_client.cancel)
    timer.daemon = True
    timer.start()
    try:
        debugpy.wait_for_client()
    finally:
        timer.cancel()
    if not debugpy.is_client_connected():
        host, port = _Listening.endpoint or (HOST, 0)
        raise DebugTimeout(f"no debugger attached to {host}:{port} within {timeout:g} s; "
                           "attach sooner, or give a longer debug timeout")


def stop_on_exception(exc: BaseException) -> None:
    """Stop the attached debugger at ``exc``, which the step raised and devd caught, as at
    an uncaught exception: with VS Code's default exception filters ("Uncaught
    Exceptions" on) the client stops there, with the raising frame's stack. It follows the
    client's filters (none ticked: no stop). Needs debugpy 1.8.22+ (older ones: no stop)."""
    if _Listening.endpoint is None or "debugpy" not in sys.modules:
        return
    import debugpy

    trigger = getattr(debugpy, "trigger_exception_handler", None)
    if trigger is None or not debugpy.is_client_connected():
        return
    if any(seen is exc for seen in _Paused.exceptions):  # stopped on it already ("raised",
        return  # "User Uncaught Exceptions" ticked): once is enough
    trigger((type(exc), exc, exc.__traceback__), as_uncaught=True)


class _Paused:
    """Time the step spent stopped in the debugger (any thread stopped counts once)."""

    lock = threading.Lock()
    stopped = 0  # threads stopped now
    since = 0.0
    total = 0.0
    exceptions: ClassVar[list[BaseException]] = []  # those the debugger stopped on


def _count_paused() -> None:
    """Wrap pydevd's ``do_wait_suspend`` (where a stopped thread waits for continue/step),
    so that the spin's time can leave out the time spent stopped."""
    import time

    import pydevd

    py_db = pydevd.get_global_debugger()
    if py_db is None:
        return
    waited = py_db.do_wait_suspend

    def do_wait_suspend(*args: Any, **kwargs: Any) -> Any:
        # (thread, frame, event, arg, ...): arg is exc_info for an exception stop
        if len(args) > 3 and args[2] == "exception" and isinstance(args[3], tuple):
            _Paused.exceptions.append(args[3][1])
        with _Paused.lock:
            if _Paused.stopped == 0:
                _Paused.since = time.perf_counter()
            _Paused.stopped += 1
        try:
            return waited(*args, **kwargs)
        finally:
            with _Paused.lock:
                _Paused.stopped -= 1
                if _Paused.stopped == 0:
                    _Paused.total += time.perf_counter() - _Paused.since

    py_db.do_wait_suspend = do_wait_suspend


def paused_seconds() -> float:
    """How long the step has been stopped at breakpoints, steps or exceptions so far."""
    import time

    with _Paused.lock:
        now = time.perf_counter() - _Paused.since if _Paused.stopped else 0.0
        return _Paused.total + now


def list_parent_artifacts() -> None:
    """A debugger listing ``self`` sees every artifact the step can read.

    Metaflow loads a parent's artifact on first access (``FlowSpec.__getattr__``), so
    ``dir(self)`` holds only those read so far: the Variables view would miss the rest. For
    the debugger's own listings only (Metaflow's ``dir(flow)`` when it stores the task is
    left alone), ``dir`` adds the names in the task's datastore; showing one loads it.
    """
    from metaflow import FlowSpec

    if getattr(FlowSpec.__dir__, "_devd", False):
        return

    def __dir__(self: Any) -> list[str]:
        names = list(object.__dir__(self))
        if _asked_by_debugger():
            store = self.__dict__.get("_datastore")
            stored = getattr(store, "_objects", None) or {}
            names = sorted(set(names) | {n for n in stored if not n.startswith("__")})
        return names

    __dir__._devd = True  # type: ignore[attr-defined]
    FlowSpec.__dir__ = __dir__  # type: ignore[method-assign]


def _asked_by_debugger() -> bool:
    frame: FrameType | None = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return False
        if "pydevd" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def end_session() -> None:
    """Detach the debugger: the client gets its last responses and ``terminated`` before
    the step's process exits (an exit alone would cut the connection mid-message)."""
    if _Listening.endpoint is None or "pydevd" not in sys.modules:
        return
    _Listening.endpoint = None
    try:
        import pydevd

        pydevd.stoptrace()
    except Exception:  # noqa: BLE001 - the step's result matters more than a tidy goodbye
        pass


def post_mortem(exc: BaseException) -> None:
    """``pdb`` at the frame that raised ``exc``, on this process's terminal (``--pdb``)."""
    import bdb
    import pdb
    import traceback

    if isinstance(exc, bdb.BdbQuit):  # the user quit a breakpoint(): no second prompt
        return
    sys.stdout.flush()
    print("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
          file=sys.stderr, end="")
    print("devd: entering post-mortem pdb (q to quit)", file=sys.stderr, flush=True)
    pdb.post_mortem(exc.__traceback__)


def describe(endpoint: dict[str, Any]) -> str:
    """The line a terminal shows for a debug spin waiting for its client."""
    return f"waiting for a debugger on {endpoint['host']}:{endpoint['port']}"
