"""What devd changes or reads of Metaflow's process-wide state, for a Session.

Metaflow keeps some state for the life of a process (the datastore root it found first,
the metadata provider) and needs a user name; a warm process serves spins for as long as
it lives, so a Session sets these up where it starts.
"""

from __future__ import annotations

import os
from typing import Any

from ..common.errors import DevdError


def bind_metaflow_root() -> None:
    """Make Metaflow look for ``.metaflow`` from the current directory again.

    Metaflow caches the local datastore root of the first directory it searched from
    for the life of the process; a Session belongs to the directory it was made in.
    """
    from metaflow.client import core
    from metaflow.plugins.datastores.local_storage import LocalStorage
    from metaflow.plugins.datastores.spin_storage import SpinStorage

    LocalStorage.datastore_root = None
    SpinStorage.datastore_root = None
    if core.current_metadata is not False and getattr(core.current_metadata, "TYPE", "") in (
        "local", "spin"
    ):
        core.current_metadata = False


def require_user() -> None:
    """Metaflow refuses to work without a non-root user name; say so before it does."""
    from metaflow.util import get_username

    if get_username() is None:
        raise DevdError(
            "Metaflow needs a user name other than root: set USER (e.g. `export USER=alice`)"
        )


def runs_fingerprint(flow_name: str, cwd: str | None = None) -> tuple[Any, ...] | None:
    """Cheap change detector for the flow's runs; None means 'always look again'.

    Local metadata: the run directories' mtimes (no I/O beyond a few stats). The metadata
    service: its newest run, one request at most once per DEVD_SERVICE_RUNS_TTL
    (devd/core/runwatch.py; raises ``ServiceUnreachable`` when it does not answer)."""
    from metaflow.metaflow_config import DEFAULT_METADATA
    from metaflow.plugins.datastores.local_storage import LocalStorage

    if DEFAULT_METADATA == "service":
        from .runwatch import service_fingerprint

        return service_fingerprint(flow_name, cwd)
    if DEFAULT_METADATA != "local":
        return None
    root = LocalStorage.get_datastore_root_from_config(lambda *a, **k: None,
                                                       create_on_absent=False)
    if root is None:
        return ("none",)
    flow_dir = os.path.join(root, flow_name)
    try:
        entries = [e for e in os.scandir(flow_dir) if e.is_dir() and not e.name.startswith("_")]
    except FileNotFoundError:
        return ("none",)
    stamps = [(e.name, e.stat().st_mtime_ns) for e in entries]
    newest = max(entries, key=lambda e: e.name, default=None)
    if newest is not None:
        for sub in os.scandir(newest.path):
            if sub.is_dir():
                stamps.append((sub.name, sub.stat().st_mtime_ns))
    return tuple(sorted(stamps))
