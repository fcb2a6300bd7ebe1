"""Which project a flow belongs to, and where that project's daemon lives.

Light on purpose (standard library only): the CLI uses it before deciding whether to
talk to a daemon or to load the engine itself.
"""

from __future__ import annotations

import os


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


def runtime_base() -> str:
    """Per-user directory for daemon sockets: $DEVD_RUNTIME_DIR, $XDG_RUNTIME_DIR/devd, or tmp."""
    base = os.environ.get("DEVD_RUNTIME_DIR")
    if not base:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        uid = os.getuid() if hasattr(os, "getuid") else 0
        tmp = os.environ.get("TMPDIR") or "/tmp"
        base = os.path.join(xdg, "devd") if xdg else os.path.join(tmp, f"devd-{uid}")
    return base


class DaemonPaths:
    """Files of one project's daemon, inside a 0700 runtime directory."""

    def __init__(self, root: str, directory: str) -> None:
        self.root = root
        self.directory = directory

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
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        os.chmod(os.path.dirname(self.directory), 0o700)
        os.chmod(self.directory, 0o700)

    def read_info(self) -> dict[str, object]:
        import json

        try:
            with open(self.info) as fh:
                data = json.load(fh)
                return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}


def daemon_paths(root: str) -> DaemonPaths:
    root = os.path.abspath(root)
    try:
        from _sha1 import sha1  # CPython's own SHA-1: loads faster than OpenSSL's hashlib
    except ImportError:
        from hashlib import sha1
    digest = sha1(root.encode()).hexdigest()[:12]
    return DaemonPaths(root, os.path.join(runtime_base(), digest))
