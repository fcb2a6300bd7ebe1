"""Directories only this user controls: what devd checks before it keeps a socket in one,
or reads back a cache it will unpickle from.

Standard library only (the CLI's socket check uses it before anything heavy loads).
"""

from __future__ import annotations

import os
import stat

from .errors import DevdError


class UnsafeDir(DevdError):
    """A directory another user could control: devd will not use it."""


def euid() -> int | None:
    return os.geteuid() if hasattr(os, "geteuid") else None


def check_private(path: str, st: os.stat_result | None = None, *, what: str = "its socket",
                  variable: str = "DEVD_RUNTIME_DIR",
                  error: type[DevdError] = UnsafeDir) -> None:
    """``path`` (not followed if a link) is a directory of this user that no one else can write.

    What ssh-agent and tmux check of their socket directories: another user who created
    it, or can write to it, could put their own files in the victim's place.
    """
    uid = euid()
    if uid is None:
        return
    st = st or os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise error(f"{path} is not a directory (a symlink or a file): devd will not keep "
                    f"{what} there; remove it, or set {variable}")
    if st.st_uid != uid:
        raise error(f"{path} belongs to another user (uid {st.st_uid}, you are {uid}): devd "
                    f"will not use it; remove it, or set {variable} to a directory of your own")
    if st.st_mode & 0o022:
        raise error(f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}): "
                    f"devd will not use it; `chmod 700 {path}` if it is yours, or set "
                    f"{variable} to a directory of your own")


def check_parent(path: str, *, what: str = "its socket", variable: str = "DEVD_RUNTIME_DIR",
                 error: type[DevdError] = UnsafeDir) -> None:
    """``path`` holds devd's directory: only this user or root may replace its entries.

    Owned by this user or root, and writable by no one else unless sticky (as /tmp is:
    then others cannot rename or remove what devd created in it).
    """
    uid = euid()
    if uid is None:
        return
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise error(f"{path} is not a directory: set {variable} to one")
    if st.st_uid not in (uid, 0):
        raise error(f"{path} belongs to another user (uid {st.st_uid}): devd will not keep "
                    f"{what} under it; set {variable} to a directory of your own")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise error(f"{path} is writable by other users and not sticky (mode "
                    f"{stat.S_IMODE(st.st_mode):04o}): devd will not keep {what} under it; "
                    f"set {variable} to a directory of your own")


def make_dir(path: str) -> bool:
    """mkdir 0700; False if it existed (then it is checked, never changed)."""
    try:
        os.mkdir(path, 0o700)
        return True
    except FileExistsError:
        return False


def checked_dir(path: str, *, what: str, variable: str,
                error: type[DevdError] = UnsafeDir) -> str:
    """``path``, created (each missing directory 0700) or checked: this user's, writable by
    no one else, and every directory above it one only this user or root can change (so
    no one can rename it away and put their own in its place). Returns the absolute path;
    raises ``error`` naming the directory and ``variable`` (the setting that moves it)."""
    path = os.path.abspath(path)
    try:
        return _checked_dir(path, what, variable, error)
    except OSError as exc:  # a directory above that cannot be searched, a read-only disk
        raise error(f"cannot use {path} for {what} ({exc.strerror or exc}): set {variable} "
                    "to a directory of your own") from None


def _checked_dir(path: str, what: str, variable: str, error: type[DevdError]) -> str:
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        current = os.path.dirname(current)
    # what exists above is checked before anything is created in it; a link there is
    # followed (its target is what counts)
    above = os.path.realpath(current if missing else os.path.dirname(path))
    while True:
        check_parent(above, what=what, variable=variable, error=error)
        parent = os.path.dirname(above)
        if parent == above:
            break
        above = parent
    for directory in reversed(missing):
        if not make_dir(directory) and directory != path:  # someone made it first: whose?
            check_parent(directory, what=what, variable=variable, error=error)
    check_private(path, what=what, variable=variable, error=error)
    return path


def user_cache_root() -> str:
    """devd's per-user cache directory: ``$XDG_CACHE_HOME/devd``, else ``~/.cache/devd``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "devd")
