"""IncludeFile contents read once per warm process, not once per spin.

An ``IncludeFile`` parameter is recorded as a handle (``IncludedFile``) whose descriptor
points at the file's copy in the datastore, under a content-addressed key (its sha1):
every task of the run carries the handle, and Metaflow reads the file from the store each
time the handle is decoded (the step's task init, the spin's result: three S3 GETs per
spin of a run recorded in S3). The key never changes content, so the decoded value is
kept here by descriptor; the warm process decodes its parents' handles once
(``prime``) and every child it forks finds them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

_memo: dict[str, Any] = {}
_lock = threading.Lock()


def _key(descriptor: Any) -> str | None:
    """The memo key of a file Metaflow uploaded (content-addressed); None for an external
    URL (``uploader-v2`` of another sub-type), whose content may change: read each time."""
    if not isinstance(descriptor, dict):
        return None
    kind = descriptor.get("type")
    if not (kind == "uploader-v1" or (kind == "uploader-v2"
                                      and descriptor.get("sub-type") == "uploaded")):
        return None
    try:
        return json.dumps(descriptor, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return None


def install() -> None:
    """Make Metaflow's uploaders (v1 and v2) read each included file once per process."""
    from metaflow import includefile

    for name in ("UploaderV1", "UploaderV2"):
        cls = getattr(includefile, name, None)
        load = getattr(cls, "__dict__", {}).get("load")
        if cls is None or not isinstance(load, classmethod) or \
                getattr(load.__func__, "_devd_memo", False):
            continue
        original = load.__func__

        def memo_load(klass: Any, descriptor: Any, _original: Any = original) -> Any:
            key = _key(descriptor)
            with _lock:
                if key is not None and key in _memo:
                    return _memo[key]
            value = _original(klass, descriptor)
            if key is not None:
                with _lock:
                    _memo[key] = value
            return value

        memo_load._devd_memo = True  # type: ignore[attr-defined]
        cls.load = classmethod(memo_load)


def prime(named_values: Iterable[tuple[str, Any]]) -> None:
    """Decode the IncludeFile handles among these values here, so forked children don't."""
    from metaflow.includefile import IncludedFile

    for name, value in named_values:
        if isinstance(value, IncludedFile):
            try:
                value.decode(name)
            except Exception:  # noqa: BLE001 - unreadable now: the child reports it as Metaflow does
                pass
