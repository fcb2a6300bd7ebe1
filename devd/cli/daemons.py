"""Ensure a daemon for this project and interpreter: the one policy every client follows.

The CLI, ``devd serve --stdio`` (what an editor starts) and ``devd mcp`` all join the
project's daemon through here. A daemon serves one interpreter, the one that started it,
and runs the flows with it: a daemon of another interpreter is never joined; it is stopped
and replaced (the client's stderr, the editor's devd output, and the daemon's log say so),
or, where a client may work without a daemon, passed by. The daemon itself
(``python -m devd.lsp.daemon``) only serves; where it lives is devd/common/project.py's.

Light on purpose: ``devd spin`` answered by a warm daemon passes through here, so what
starting or stopping a daemon needs is imported when it is done.
"""

from __future__ import annotations

import _thread
import os
import sys

from ..common.project import DaemonUnavailable, daemon_paths, open_socket, project_root
from .client import DaemonClient, connect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..common.project import DaemonPaths

# One thread of a process starts (or replaces) a daemon, the others wait: an agent calls
# devd mcp's tools in parallel. (_thread: `threading` would cost `devd spin` its import.)
_starting = _thread.allocate_lock()


def daemon_for(path: str, start: str = "never") -> DaemonClient | None:
    """A connection to the daemon of ``path``'s project (a flow or a directory) running this
    interpreter, or None.

    ``start``: ``"always"`` starts a daemon when none runs, ``"if-died"`` only when one died
    without cleaning up (its socket file is left: killed, or crashed) rather than the command
    quietly running in this process, ``"never"`` never. A daemon of another interpreter is
    replaced by one of this interpreter, or with ``"never"`` passed by.
    """
    paths = daemon_paths(project_root(path))
    with _starting:
        client = connect(paths)
        if client is not None:
            if paths.other_interpreter() is None:
                return client
            client.close()
            if start == "never":
                return None  # the caller works without a daemon, in this interpreter
        elif start == "never" or (start == "if-died" and not os.path.lexists(paths.socket)):
            return None
        if start == "if-died" and client is None:
            print(f"devd: the daemon for {paths.root} had died; starting a fresh one",
                  file=sys.stderr)
        start_background(paths.root)
        return connect(paths)


def socket_alive(paths: DaemonPaths) -> bool:
    """True when a daemon of this user answers on the project's socket.

    Raises UnsafeRuntimeDir when the directory or socket could be another user's.
    """
    try:
        open_socket(paths, 1.0).close()
        return True
    except DaemonUnavailable:
        return False


def clear_stale(paths: DaemonPaths) -> bool:
    """Remove socket and pid files a killed daemon left behind; True if there were any."""
    if not paths.check() or socket_alive(paths):
        return False
    removed = False
    for name in (paths.socket, paths.pidfile, paths.info, paths.interpreter):
        try:
            os.unlink(name)
            removed = True
        except FileNotFoundError:
            pass
    return removed


def start_background(root: str, idle_seconds: float | None = None,
                     budget_mb: float | None = None, tcp_port: int | None = None,
                     wait: float = 30.0) -> int:
    """Start the project's daemon unless one of this interpreter runs; return its pid.

    A daemon of another interpreter is stopped and replaced (the module's rule). Unset
    settings are the daemon's defaults (``DEVD_IDLE_TIMEOUT``, ``DEVD_BUDGET_MB``: it
    inherits this environment).
    """
    import subprocess
    import time

    paths = daemon_paths(root)
    paths.ensure()
    if socket_alive(paths):
        other = paths.other_interpreter()
        if other is None:
            return paths.read_pid()
        _replacing(paths, other)
        stop(root)
    clear_stale(paths)
    command = [sys.executable, "-m", "devd.lsp.daemon", "--root", paths.root]
    if idle_seconds is not None:
        command += ["--idle-timeout", str(idle_seconds)]
    if budget_mb is not None:
        command += ["--budget-mb", str(budget_mb)]
    if tcp_port is not None:
        command += ["--tcp", str(tcp_port)]
    with open(paths.log, "ab") as logfile:
        proc = subprocess.Popen(command, cwd=paths.root, stdin=subprocess.DEVNULL,
                                stdout=logfile, stderr=logfile, start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if socket_alive(paths):
            return proc.pid
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = ""
    try:
        with open(paths.log, errors="replace") as fh:
            tail = fh.read()[-400:].strip().splitlines()[-1:]  # type: ignore[assignment]
    except OSError:
        pass
    from ..common.errors import DevdError

    raise DevdError(f"the daemon did not start ({''.join(tail) or 'no output'}); "
                    f"see {paths.log}")


def _replacing(paths: DaemonPaths, other: str) -> None:
    """Say, on stderr and in the daemon's log, that the daemon of ``other`` gives way."""
    import time

    message = (f"devd: the daemon for {paths.root} runs {other}; replacing it with a daemon "
               f"of {sys.executable}")
    print(message, file=sys.stderr, flush=True)
    try:
        with open(paths.log, "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
    except OSError:
        pass  # stderr said it


def stop(root: str, wait: float = 10.0) -> bool:
    """Stop the project's daemon; False if none was running."""
    import signal
    import time

    paths = daemon_paths(root)
    if not socket_alive(paths):  # checks the directory is the user's before trusting info.json
        clear_stale(paths)
        return False
    pid = paths.read_pid()
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            clear_stale(paths)
            return False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and os.path.exists(paths.socket):
        time.sleep(0.05)
    return True


def relay_stdio(root: str) -> int:
    """``devd serve --stdio``: join the project daemon (starting it) and relay bytes."""
    import _socket
    import threading

    paths = daemon_paths(root)
    start_background(root)
    sock = open_socket(paths)
    stdin_fd = sys.stdin.fileno()
    stdout = sys.stdout.buffer

    def upstream() -> None:
        try:
            while True:
                chunk = os.read(stdin_fd, 65536)
                if not chunk:
                    break
                sock.sendall(chunk)
        except OSError:
            pass
        finally:
            try:
                sock.shutdown(_socket.SHUT_WR)
            except OSError:
                pass

    threading.Thread(target=upstream, daemon=True).start()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            stdout.write(data)
            stdout.flush()
    except (OSError, BrokenPipeError):
        pass
    finally:
        sock.close()
    # The stdin reader thread may still be blocked in read(): leave without joining it.
    os._exit(0)
