"""Where a spin's throwaway task is written, and what removes it.

A spin without ``--persist`` gives Metaflow a scratch folder for the spun task's files
(in memory, on /dev/shm, where it can). The folder is named after the child's pid, inside
a folder only this user can write (so the name being known in advance gives no one a
way in). A child removes its own before it answers (a Task object of the spun task handed
back then fails at once, not later). What a child that never answered leaves (cancelled,
superseded, a prepared child nobody used, killed) the warm process removes when it reaps
it; folders of children that died while no warm process reaped them (a daemon killed)
are swept once per warm process.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile

from .privatedir import UnsafeDir, checked_dir, euid


@functools.cache
def root() -> str | None:
    """This user's folder of scratch folders (made 0700, or checked); None if unsafe."""
    shm = "/dev/shm"
    base = shm if os.access(shm, os.W_OK) else tempfile.gettempdir()
    uid = euid()
    try:
        return checked_dir(os.path.join(base, f"devd-{'user' if uid is None else uid}-spins"),
                           what="spins' scratch folders", variable="TMPDIR")
    except UnsafeDir:  # another user's: each child then makes a random one and removes it
        return None


def make(pid: int) -> str:
    """A fresh scratch folder for child ``pid`` (a random one outside the root, which its
    reaper does not know, when the root is unsafe)."""
    folder = root()
    if folder is None:
        return tempfile.mkdtemp(prefix="devd-spin-")
    path = os.path.join(folder, str(pid))
    shutil.rmtree(path, ignore_errors=True)  # a dead child's, whose pid was used again
    os.mkdir(path, 0o700)
    return path


def remove(pid: int) -> None:
    """Remove reaped child ``pid``'s scratch folder, if it left one (a child that answered
    removed its own: then this is one failed lookup); the first call also sweeps those of
    children no one reaped."""
    _sweep_once()
    folder = root()
    if folder is not None:
        shutil.rmtree(os.path.join(folder, str(pid)), ignore_errors=True)


@functools.cache
def _sweep_once() -> None:
    folder = root()
    if folder is None:
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.isdigit() and not _alive(int(name)):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds that pid: not ours to judge
        return True
    return True
