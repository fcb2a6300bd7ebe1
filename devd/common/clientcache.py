"""Metaflow's client cache, as devd reads parent tasks through it.

Metaflow keeps decompressed blobs and task metadata in ``METAFLOW_CLIENT_CACHE_PATH``
(default ``/tmp/metaflow_client``, one directory for every user of the machine: whoever
creates it first owns it, and a pickle planted there would run as the next user who
reads a parent). devd's own reads use a directory it checked instead: a per-user one by
default (``~/.cache/devd/metaflow-client``), or the user's own ``METAFLOW_CLIENT_CACHE_PATH``
when they set one and it is theirs alone; failing that, devd reads without the cache
(one warning naming the directory and the variable). Whatever the directory, a blob is
checked against its key (sha1 of the bytes, Metaflow's content address) before Metaflow
unpickles it: one that does not match is dropped, logged and read from the datastore
again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
from typing import Any

from .privatedir import UnsafeDir, checked_dir, user_cache_root

log = logging.getLogger("devd.clientcache")

VARIABLE = "METAFLOW_CLIENT_CACHE_PATH"
METAFLOW_DEFAULT = "/tmp/metaflow_client"

_warned: set[str] = set()
_lock = threading.Lock()


def cache_path() -> tuple[str, bool]:
    """The directory devd's reads cache in, and whether the user named it (the variable,
    or Metaflow's config file); else devd's per-user directory, never the shared default."""
    named = os.environ.get(VARIABLE)
    if named:
        return os.path.abspath(named), True
    from metaflow.metaflow_config import CLIENT_CACHE_PATH

    if CLIENT_CACHE_PATH and os.path.abspath(CLIENT_CACHE_PATH) != METAFLOW_DEFAULT:
        return os.path.abspath(CLIENT_CACHE_PATH), True
    return os.path.join(user_cache_root(), "metaflow-client"), False


def checked_cache_dir() -> str | None:
    """The cache directory, created 0700 or checked to be this user's alone up to /;
    None (after one warning per directory) when it is not: then devd reads without it."""
    path, _named = cache_path()
    try:
        return checked_dir(path, what="Metaflow's client cache", variable=VARIABLE)
    except UnsafeDir as exc:
        with _lock:
            first = path not in _warned
            _warned.add(path)
        if first:
            log.warning("Metaflow's client cache: %s (until then devd reads parent tasks "
                        "without it)", exc)
        return None


@functools.cache
def _classes() -> tuple[type, type]:
    from metaflow.client.filecache import FileCache

    class VerifiedFileCache(FileCache):
        """Metaflow's FileCache whose blobs are checked against their key when read."""

        def read_file(self, path: str) -> bytes | None:
            data = super().read_file(path)
            if data is None or not path.endswith(".blob"):
                return data  # task metadata and logs: trusted as the directory is
            key = os.path.basename(path)[:-len(".blob")]
            if hashlib.sha1(data).hexdigest() == key:
                return data
            del data
            log.warning("%s is not the blob its name says (its sha1 differs): dropped, "
                        "reading the blob from the datastore again", path)
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None  # Metaflow reads it from the datastore (and caches that copy)

    class NoFileCache(FileCache):
        """Keeps nothing: every read goes to the datastore."""

        def read_file(self, path: str) -> bytes | None:
            return None

        def create_file(self, path: str, value: bytes) -> None:
            return None

    return VerifiedFileCache, NoFileCache


def _make(path: str | None) -> Any:
    verified, nothing = _classes()
    return verified(cache_dir=path) if path else nothing(cache_dir=os.devnull)


def file_cache() -> Any:
    """A Metaflow ``FileCache`` for devd's reads: the checked directory with every blob
    verified before use, or (the directory cannot be trusted) one that keeps nothing."""
    return _make(checked_cache_dir())


def install() -> None:
    """Metaflow's Client in this process (devd reads which parents are usable through it)
    caches in the checked directory and verifies blobs too. The one installed stays while
    the directory is the same (a new one would index the whole cache again)."""
    from metaflow.client import core

    path = checked_cache_dir()
    current = core.filecache
    if isinstance(current, _classes()) and \
            getattr(current, "cache_dir", None) == (path or os.devnull):
        return
    core.filecache = _make(path)
