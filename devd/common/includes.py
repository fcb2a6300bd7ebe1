"""IncludeFile contents read once per warm process, not once per spin.

An ``IncludeFile`` parameter is recorded as a handle (``IncludedFile``) whose descriptor
points at the file's copy in the datastore, under a content-addressed key (its sha1):
every task of the run carries the handle, and Metaflow reads the file from the store each
time the handle is decoded (the step's task init, the spin's result: three S3 GETs per
spin of a run recorded in S3). The key never changes content, so the decoded value is
kept here by descriptor; the warm process decodes its parents' handles once
(``prime``) and every child it forks finds them. The file's bytes are also kept in devd's
blob cache (``.raw`` beside the parents' blobs, under the sha1 the store's key names,
checked on every read), so a restarted daemon reads nothing from the store for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("devd.includes")

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
            value = _from_disk(descriptor) if key is not None else None
            if value is None:
                if key is not None:
                    _probe(descriptor)
                value = _original(klass, descriptor)
                if key is not None:
                    _to_disk(descriptor, value)
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


def _disk_path(descriptor: dict[str, Any]) -> tuple[str, str] | None:
    """Where the blob cache keeps an uploaded file's bytes, and their sha1 (the last part of
    Metaflow's key, ``<root>/<Flow>/<sha1>``); None for any other URL."""
    from .blobcache import cached_path, checked_cache_dir

    url = str(descriptor.get("url") or "")
    folder, _, sha = url.rpartition("/")
    store, _, flow = folder.rpartition("/")
    if not re.fullmatch(r"[0-9a-f]{40}", sha) or not store or not flow:
        return None
    return cached_path(checked_cache_dir(), store, flow, sha), sha


def _decode(descriptor: dict[str, Any], raw: bytes) -> Any:
    """As Metaflow's uploaders decode the file (text through ``TextIOWrapper``)."""
    if descriptor.get("is_text"):
        return io.TextIOWrapper(io.BytesIO(raw), encoding=descriptor.get("encoding")).read()
    return raw


def _from_disk(descriptor: dict[str, Any]) -> Any:
    """The file's content from the blob cache, or None (not there, or not its sha1)."""
    try:
        found = _disk_path(descriptor)
        if found is None:
            return None
        path, sha = found
        with open(path, "rb") as fh:
            raw = fh.read()
        if hashlib.sha1(raw).hexdigest() != sha:
            log.warning("cached IncludeFile %s is damaged: dropped, reading it again", path)
            os.unlink(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used: trimmed last
        return _decode(descriptor, raw)
    except Exception:  # noqa: BLE001 - no cache (missing, unsafe, unreadable): read the store
        return None


def _to_disk(descriptor: dict[str, Any], value: Any) -> None:
    """Keep the bytes Metaflow decoded ``value`` from, when they are the ones its key names
    (text that does not encode back to them, e.g. CRLF lines, is read once per process)."""
    try:
        found = _disk_path(descriptor)
        if found is None:
            return
        path, sha = found
        if isinstance(value, str):
            encoding = io.TextIOWrapper(io.BytesIO(), encoding=descriptor.get("encoding")).encoding
            raw = value.encode(encoding)
        else:
            raw = bytes(value)
        if hashlib.sha1(raw).hexdigest() != sha:
            return
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".part-")
        try:
            with os.fdopen(handle, "wb") as fh:
                fh.write(raw)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except Exception as exc:  # noqa: BLE001 - the cache is a saving only: read again next time
        log.debug("IncludeFile not kept on disk: %s: %s", type(exc).__name__, exc)


def _probe(descriptor: dict[str, Any]) -> None:
    """Before a real read of an S3 copy: a store that cannot be read is one line now,
    not Metaflow's retries (the probe devd makes only before reading from a store)."""
    url = str(descriptor.get("url") or "")
    if url.startswith("s3://"):
        from .s3store import probe

        probe("s3", url.rpartition("/")[0], f"the IncludeFile at {url}")
