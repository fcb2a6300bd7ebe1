"""``--persist`` all or nothing: the spun task is written aside and published when done.

Metaflow's spin storage writes a task piece by piece (its run's metadata first, then
each artifact, then the DONE marker): a spin that fails half way (a full disk, a kill)
would leave a task ``inspect_spin`` shows unfinished, and blobs nothing points to. The
child writes every file of the spin storage under a hidden staging folder inside the
spin root instead (``.devd-staging-PID-*``: the Client's listings skip dot folders),
while Metaflow records the real root's paths as usual; when the task is done, its blobs,
then its run folder (one rename) move into place. A task that did not get its DONE
marker is removed whole, and a staging folder whose process is gone (killed mid-persist)
is removed by the next persist spin, or by the warm process when the child died.
"""

from __future__ import annotations

import glob
import os
import shutil
from typing import Any

PREFIX = ".devd-staging-"


def spin_root(cwd: str) -> str | None:
    """The spin storage's root for a spin run in ``cwd`` (where Metaflow's own lookup
    finds ``.metaflow_spin``), or None when there is none yet."""
    from metaflow.plugins.datastores.spin_storage import SpinStorage

    if SpinStorage.SYSROOT_VAR:
        return os.path.join(SpinStorage.SYSROOT_VAR, SpinStorage.DATASTORE_DIR)
    current = os.path.realpath(cwd)
    while True:
        candidate = os.path.join(current, SpinStorage.DATASTORE_DIR)
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def sweep(root: str | None) -> list[str]:
    """Remove the staging folders under ``root`` whose process is gone; their paths."""
    if not root:
        return []
    removed = []
    for path in glob.glob(os.path.join(glob.escape(root), PREFIX + "*")):
        try:
            pid = int(os.path.basename(path)[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class Staging:
    """Every path under the spin root, written under a staging folder until published."""

    def __init__(self) -> None:
        import tempfile

        from metaflow.plugins.datastores.spin_storage import SpinStorage

        root = SpinStorage.get_datastore_root_from_config(lambda *a, **k: None,
                                                          create_on_absent=True)
        self.root = os.path.normpath(root)
        os.makedirs(self.root, exist_ok=True)
        sweep(self.root)
        self.path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.root)
        real_full_uri = SpinStorage.full_uri
        root_prefix, staged = self.root + os.sep, self.path

        def full_uri(storage: Any, path: str) -> str:
            """New paths are staged; what the root already holds (an earlier persisted
            spin read as a parent, a blob or the flow's record already there) is read, and
            never rewritten, in place."""
            uri = os.path.normpath(real_full_uri(storage, path))
            if uri != self.root and not uri.startswith(root_prefix):
                return uri
            aside = staged + uri[len(self.root):]
            if os.path.lexists(uri) and not os.path.lexists(aside):
                return uri
            return aside

        SpinStorage.full_uri = full_uri  # type: ignore[method-assign]

    def done(self, flow: str, run_id: str, step: str, task_id: str) -> bool:
        """Whether Metaflow finished storing the task (it writes DONE last)."""
        task = os.path.join(self.path, flow, run_id, step, task_id)
        return bool(glob.glob(os.path.join(glob.escape(task), "*.DONE.lock")))

    def publish(self) -> None:
        """Move what was staged into the spin root: blobs first, each run folder last."""
        for flow in sorted(os.listdir(self.path)):
            source = os.path.join(self.path, flow)
            entries = sorted(os.listdir(source), key=lambda name: name != "data")
            for name in entries:
                _move(os.path.join(source, name), os.path.join(self.root, flow, name))
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _move(source: str, target: str) -> None:
    """``source`` to ``target``: a rename where nothing is there yet, else merged file by
    file (a content-addressed blob already there is the same blob)."""
    if not os.path.lexists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(source, target)
    elif os.path.isdir(source) and os.path.isdir(target) and not os.path.islink(target):
        for name in os.listdir(source):
            _move(os.path.join(source, name), os.path.join(target, name))
