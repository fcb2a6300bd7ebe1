"""A remote store is checked when devd is about to read from it, not before every lookup.

Metaflow's S3 datastore retries a read of a store that cannot be read for minutes (its
own client: no devd timeouts). devd's probe (``s3store.probe``: one ``ListObjectsV2``
with devd's timeouts, once a minute per store) turns that into one line in seconds. It
runs just before Metaflow's datastore really goes to the store (a read its client cache
could not answer), so a spin whose parents, indexes and plan all come from devd's and
Metaflow's disk caches (a restarted daemon) asks the store nothing at all, and a store
that is down does not stop it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from .errors import DevdError

_READS = ("load_bytes", "is_file", "info_file", "size_file", "list_content")
_local = threading.local()
_installed: list[bool] = []
_install_lock = threading.Lock()


class StoreUnreachable(DevdError):
    """The probe before a read failed: the store cannot be read at all."""


def install() -> None:
    """Make Metaflow's S3 datastore probe the store before its reads (once per process)."""
    with _install_lock:
        if _installed:
            return
        _installed.append(True)
        try:
            from metaflow.plugins.datastores.s3_storage import S3Storage
        except ImportError:  # a Metaflow without S3 support: nothing to check
            return
        for name in _READS:
            original = S3Storage.__dict__.get(name)
            if callable(original):
                setattr(S3Storage, name, _checked(original))


def _checked(original: Any) -> Any:
    def read(self: Any, *args: Any, **kwargs: Any) -> Any:
        check("s3", str(self.datastore_root))
        return original(self, *args, **kwargs)

    read.__name__ = getattr(original, "__name__", "read")
    read.__doc__ = original.__doc__
    return read


def check(ds_type: str, ds_root: str) -> None:
    """Probe ``ds_root`` before a read; inside ``reading`` a failed probe is remembered, so
    the block's later reads fail at once (not one timeout each) and ``failure()`` has it."""
    failed = getattr(_local, "failure", None)
    if failed is not None:
        raise failed
    from .s3store import probe

    try:
        probe(ds_type, ds_root, getattr(_local, "what", None) or "artifacts")
    except DevdError as exc:
        unreachable = StoreUnreachable(str(exc))
        if getattr(_local, "what", None) is not None:
            _local.failure = unreachable
        raise unreachable from None


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    """Reads of Metaflow's datastore in this block (this thread) are for ``what`` (``the
    runs of F``, ``parent task F/1/a/2``): the words of the one-line error."""
    install()
    saved = (getattr(_local, "what", None), getattr(_local, "failure", None))
    _local.what, _local.failure = what, None
    try:
        yield
    finally:
        _local.what, _local.failure = saved


def failure() -> StoreUnreachable | None:
    """The failed probe of this ``reading`` block, if any (a caller that swallows read
    errors, to try the next candidate, raises it instead)."""
    return getattr(_local, "failure", None)
