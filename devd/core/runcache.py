"""The flow's runs, listed once until a run is added, and finished runs read once.

The flow view and the runs explorer ask for the newest runs on every redraw and every tree
level. With 1,000 runs, Metaflow's Client reads every run's record to list them (~0.3 s
with local metadata) and each run's end task for its status. A finished run never changes,
and the list only changes when a run is added or removed: devd keeps the list until the
flow's metadata directory changes (local metadata: a new run is a new directory in it) or,
with the metadata service, until runwatch's one cheap request reports another newest run;
and a finished run's record for as long as the daemon lives (bounded). Any other metadata
provider is asked every time, as before.
"""

from __future__ import annotations

import os
import threading
from typing import Any

MAX_RECORDS = 20_000  # finished runs' records kept (a few hundred bytes each, more with steps)

_lock = threading.Lock()
_lists: dict[tuple[str, str, str], tuple[Any, list[Any]]] = {}
_records: dict[tuple[str, str, str], Any] = {}


def _where() -> tuple[str, str]:
    """The metadata provider (``local@/path``, ``service@url``) and the namespace."""
    from metaflow import get_metadata, get_namespace

    return str(get_metadata()), str(get_namespace())


def _stamp(flow_name: str, where: str) -> Any | None:
    """What changes when a run of the flow is added or removed; None: cannot tell."""
    kind = where.partition("@")[0]
    if kind == "local":
        # Where Metaflow's local metadata provider itself looks (get_metadata()'s text keeps
        # "no .metaflow found" from before the first run made one).
        from metaflow.plugins.metadata_providers.local import LocalMetadataProvider

        try:
            path = LocalMetadataProvider._make_path(flow_name, create_on_absent=False)
            st = os.stat(path)
        except (AttributeError, TypeError, OSError):  # another Metaflow; no run yet
            return None
        return (path, st.st_mtime_ns, st.st_ino)
    if kind == "service":
        from .runwatch import ServiceUnreachable, service_fingerprint

        try:
            return service_fingerprint(flow_name)  # None while the newest run goes on
        except ServiceUnreachable:
            return None
    return None


def run_list(flow_name: str) -> list[Any]:
    """The flow's runs in the current namespace, newest first (Metaflow's ``Run``s); raises
    what ``Flow(flow_name).runs()`` raises."""
    from metaflow import Flow

    where, namespace = _where()
    key = (where, namespace, flow_name)
    stamp = _stamp(flow_name, where)
    with _lock:
        cached = _lists.get(key)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]
    runs = list(Flow(flow_name).runs())
    if stamp is not None:
        with _lock:
            _lists[key] = (stamp, runs)
    return runs


def finished(flow_name: str, run_id: str) -> Any | None:
    """A finished run's record kept by ``keep`` (None: not kept)."""
    with _lock:
        return _records.get((_where()[0], flow_name, run_id))


def keep(flow_name: str, run_id: str, record: Any) -> None:
    """Keep the record of a run that has finished (it will not change)."""
    key = (_where()[0], flow_name, run_id)
    with _lock:
        if len(_records) >= MAX_RECORDS:
            _records.clear()
        _records[key] = record


def forget() -> None:
    with _lock:
        _lists.clear()
        _records.clear()
