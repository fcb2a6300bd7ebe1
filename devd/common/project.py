"""Which project a flow belongs to, where that project's daemon lives, and a socket to it
checked to be the user's own (the CLI's client and the daemon's admission both use it).

Light on purpose (standard library only): the CLI uses it before deciding whether to
talk to a daemon or to load the engine itself.
"""

from __future__ import annotations

# _socket is the C module under `socket`: the Python wrapper imports enum and selectors,
# which cost `devd spin` milliseconds it cannot spare. Unix stream sockets need no more.
import _socket
import os
import stat
import sys

from . import privatedir
from .errors import DevdError
from .privatedir import UnsafeDir


def project_root(path: str) -> str:
    """The project of ``path`` (a flow file or a directory).

    The nearest directory above it holding Metaflow's ``.metaflow`` store (where runs are
    found), else the nearest git root, else the directory itself.
    """
    start = os.path.abspath(path)
    if not os.path.isdir(start):
        start = os.path.dirname(start)
    for marker in (".metaflow", ".git"):
        current = start
        while True:
            if os.path.exists(os.path.join(current, marker)):
                return current
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
    return start


def inside(path: str, root: str) -> bool:
    """``path`` is ``root`` or under it once both are resolved (``..`` and symlinks
    followed): what a client may name of a project it serves."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _runtime_base() -> tuple[str, bool]:
    """The per-user directory for daemon sockets ($DEVD_RUNTIME_DIR, $XDG_RUNTIME_DIR/devd,
    or tmp), and whether the user named it with $DEVD_RUNTIME_DIR."""
    base = os.environ.get("DEVD_RUNTIME_DIR")
    if base:
        return os.path.abspath(base), True
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    tmp = os.environ.get("TMPDIR") or "/tmp"
    return os.path.abspath(os.path.join(xdg, "devd") if xdg else
                           os.path.join(tmp, f"devd-{uid}")), False


class UnsafeRuntimeDir(UnsafeDir):
    """A directory or socket that another user could control: devd will not use it."""

    exit_code = 3  # the CLI's code for "the daemon cannot be used"


def check_private(path: str, st: os.stat_result | None = None) -> None:
    """``path`` (not followed if a link) is a directory of this user that no one else can
    write (devd/common/privatedir.py, for the socket's directory)."""
    privatedir.check_private(path, st, error=UnsafeRuntimeDir)


def check_parent(path: str) -> None:
    """``path`` holds devd's directory: only this user or root may replace its entries."""
    privatedir.check_parent(path, error=UnsafeRuntimeDir)


_make_dir = privatedir.make_dir
_euid = privatedir.euid


class DaemonPaths:
    """Files of one project's daemon, inside a 0700 runtime directory."""

    def __init__(self, root: str, directory: str, base_named: bool = False) -> None:
        self.root = root
        self.directory = directory
        self.base_named = base_named  # the base came from $DEVD_RUNTIME_DIR

    @property
    def socket(self) -> str:
        return os.path.join(self.directory, "sock")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.directory, "pid")

    @property
    def info(self) -> str:
        return os.path.join(self.directory, "info.json")

    @property
    def log(self) -> str:
        return os.path.join(self.directory, "daemon.log")

    def ensure(self) -> None:
        """Create the runtime directories (mode 0700) or check the existing ones.

        Never changes the mode of a directory devd did not create here: one named by
        ``DEVD_RUNTIME_DIR`` may be shared (a sticky /tmp-like directory is fine, each
        project gets its own 0700 directory inside); one of another user, or writable by
        others, is refused with :class:`UnsafeRuntimeDir`.
        """
        base = os.path.dirname(self.directory)
        if self.base_named:
            if not os.path.isdir(base):
                os.makedirs(base, mode=0o700, exist_ok=True)
            check_parent(base)
        else:
            check_parent(os.path.dirname(base))
            _make_dir(base)
            check_private(base)
        _make_dir(self.directory)
        check_private(self.directory)

    def check(self) -> bool:
        """False when the project's directory does not exist (no daemon); raises
        :class:`UnsafeRuntimeDir` when it, or a directory above it that devd relies on,
        could be controlled by another user."""
        try:
            st = os.lstat(self.directory)
        except FileNotFoundError:
            return False
        base = os.path.dirname(self.directory)
        if self.base_named:
            check_parent(base)
        else:
            check_parent(os.path.dirname(base))
            check_private(base)
        check_private(self.directory, st)
        return True

    def check_socket(self) -> bool:
        """False when there is no socket; raises :class:`UnsafeRuntimeDir` when the file
        is not a socket of this user."""
        try:
            st = os.lstat(self.socket)
        except FileNotFoundError:
            return False
        uid = _euid()
        if not stat.S_ISSOCK(st.st_mode) or (uid is not None and st.st_uid != uid):
            raise UnsafeRuntimeDir(f"{self.socket} is not a socket of yours (owner uid "
                                   f"{st.st_uid}): devd will not connect to it")
        return True

    def read_info(self) -> dict[str, object]:
        import json

        try:
            with open(self.info) as fh:
                data = json.load(fh)
                return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def read_pid(self) -> int:
        """The daemon's pid as its info.json records it (0: none recorded)."""
        pid = self.read_info().get("pid")
        return pid if isinstance(pid, int) else 0

    @property
    def interpreter(self) -> str:
        """The daemon's interpreter: its ``sys.prefix`` line, then its executable."""
        return os.path.join(self.directory, "python")

    def other_interpreter(self) -> str | None:
        """The Python of the project's running daemon when it is not this process's (its
        path, or a description); None when it is the same, or no daemon is recorded.

        One daemon serves one interpreter: a client of another one must not join it, or its
        spins and runs would use that other environment (devd/lsp/daemon.py replaces it).
        """
        try:  # plain text, not info.json: `devd spin` on a warm daemon does not load json
            with open(self.interpreter) as fh:
                prefix, _, python = fh.read().partition("\n")
        except FileNotFoundError:
            if not os.path.exists(self.info):
                return None  # no daemon recorded
            prefix, python = "", ""  # a daemon of a devd that did not record its interpreter
        except OSError:
            return None
        if prefix == this_interpreter()["prefix"]:
            return None
        return python.strip() or "an interpreter devd did not record"


def private_dir(name: str) -> str:
    """``<runtime base>/<name>``: a directory of this user's that no one else can write
    (created ``0700``, or checked as the daemons' are; UnsafeRuntimeDir otherwise), for
    files devd writes for the user alone, such as `devd card`'s pages."""
    base, named = _runtime_base()
    folder = DaemonPaths("", os.path.join(base, name), named)
    folder.ensure()
    return folder.directory


def this_interpreter() -> dict[str, str]:
    """The Python running this process: its executable, and its environment (``sys.prefix``,
    resolved), which is what tells two interpreters apart (two venvs share one executable)."""
    return {"python": sys.executable, "prefix": os.path.realpath(sys.prefix)}


def daemon_paths(root: str) -> DaemonPaths:
    root = os.path.abspath(root)
    try:
        from _sha1 import sha1  # CPython's own SHA-1: loads faster than OpenSSL's hashlib
    except ImportError:
        from hashlib import sha1
    digest = sha1(root.encode()).hexdigest()[:12]
    base, named = _runtime_base()
    return DaemonPaths(root, os.path.join(base, digest), named)


class DaemonError(DevdError):
    """Talking to the daemon failed: the CLI says so in one line (exit code 3)."""

    exit_code = 3


class DaemonUnavailable(DaemonError):
    """No daemon answers on the project's socket, or it went away mid-request."""


def peer_uid(sock: _socket.socket) -> int | None:
    """The effective uid of the process at the other end of a Unix socket (None: the
    platform cannot tell). Linux's SO_PEERCRED; macOS's LOCAL_PEERCRED."""
    if hasattr(_socket, "SO_PEERCRED"):  # struct ucred {pid_t pid; uid_t uid; gid_t gid}
        raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    elif hasattr(_socket, "LOCAL_PEERCRED"):  # struct xucred {u_int version; uid_t uid; ...}
        raw = sock.getsockopt(0, _socket.LOCAL_PEERCRED, 76)
    else:
        return None
    return int.from_bytes(raw[4:8], sys.byteorder)


def open_socket(paths: DaemonPaths, timeout: float | None = None) -> _socket.socket:
    """A connected socket to the project's daemon, after checking it is the user's own.

    Before anything is sent: the runtime directories are this user's and no one else can
    write them, the socket file is this user's, and the process that accepted the
    connection runs as this user (SO_PEERCRED). Raises DaemonUnavailable when no daemon
    runs, UnsafeRuntimeDir (a DevdError) when any check fails.
    """
    if not paths.check() or not paths.check_socket():
        raise DaemonUnavailable(f"no daemon runs for {paths.root}")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(paths.socket)
        uid = peer_uid(sock)
    except OSError as exc:
        sock.close()
        raise DaemonUnavailable(str(exc)) from None
    if uid is not None and hasattr(os, "geteuid") and uid != os.geteuid():
        sock.close()
        raise UnsafeRuntimeDir(f"the process answering on {paths.socket} runs as uid {uid}, "
                               f"not as you ({os.geteuid()}): devd will not talk to it")
    return sock
