"""Parent artifacts of a remote datastore (S3): downloaded once, in parallel, kept on disk.

A blob is downloaded once into a size-bounded disk cache, decompressed as it arrives
(like Metaflow's client cache, which holds decompressed blobs too), so a restarted daemon
only reads it from disk, and the warm loader streams it into the unpickler, never holding
the blob and the object at once.

The cache is the user's own (``~/.cache/devd/blobs``, checked 0700 and this user's up to
/ at every use) and a blob enters it only once its sha1 matched its key, so devd
unpickles from it only the artifact's recorded content. A damaged blob (its size is not
the recorded one, or it fails to unpickle and its hash is wrong) is dropped, logged and
downloaded again.

Downloads (devd/common/s3store.py) report progress and stop on cancel through ``watch()``
around the work (the daemon's spin sets it).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .errors import DevdError
from .privatedir import UnsafeDir, checked_dir, user_cache_root

log = logging.getLogger("devd.blobcache")

ProgressCallback = Callable[[int, int, str], None]  # bytes done, bytes in all, message

CHUNK = 1 << 20


def env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def cache_dir() -> str:
    """``DEVD_BLOB_CACHE``, else ``blobs`` in devd's per-user cache directory
    (``$XDG_CACHE_HOME/devd``, ``~/.cache/devd``): never a shared path such as /tmp."""
    explicit = os.environ.get("DEVD_BLOB_CACHE")
    if explicit:
        return os.path.abspath(explicit)
    return os.path.join(user_cache_root(), "blobs")


class UnsafeBlobCache(UnsafeDir):
    """The blob cache's directory is not one only this user controls."""


def checked_cache_dir() -> str:
    """The blob cache's directory, created 0700 or checked to be this user's alone (up to
    /): what devd unpickles from it only this user (or root) could have put there, and
    devd checked every blob against its content address on the way in."""
    return checked_dir(cache_dir(), what="its blob cache", variable="DEVD_BLOB_CACHE",
                       error=UnsafeBlobCache)


def cache_limit_bytes() -> int:
    """``DEVD_BLOB_CACHE_MB``, else Metaflow's own client cache bound (10 GB by default)."""
    from metaflow.metaflow_config import CLIENT_CACHE_MAX_SIZE

    return int(env_float("DEVD_BLOB_CACHE_MB", float(CLIENT_CACHE_MAX_SIZE)) * (1 << 20))


# -- progress and cancel for the work of one thread ----------------------------------------
@dataclass
class Watch:
    on_progress: ProgressCallback | None = None
    cancelled: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class DownloadProgress:
    """A spin's child reading a big parent: bytes done of total (its child event)."""

    done: int
    total: int
    message: str


_local = threading.local()
_process_watch = Watch()  # what threads without their own watch report to (set_process_watch)


@contextlib.contextmanager
def watch(on_progress: ProgressCallback | None = None,
          cancelled: Callable[[], bool] | None = None) -> Iterator[Watch]:
    """Downloads started by this thread inside the block report to ``on_progress`` and
    stop (with a DevdError) once ``cancelled()`` is true."""
    previous = getattr(_local, "watch", None)
    current = Watch(on_progress, cancelled or (lambda: False))
    _local.watch = current
    try:
        yield current
    finally:
        _local.watch = previous


def set_process_watch(on_progress: ProgressCallback | None) -> None:
    """Where downloads report in a thread that set no ``watch``: a spin's child sets it
    once, so a step (or its threads) reading a big parent is heard by the process that
    waits for the spin (``relay_progress``)."""
    global _process_watch
    _process_watch = Watch(on_progress)


def current_watch() -> Watch:
    found = getattr(_local, "watch", None)
    return found if found is not None else _process_watch


def relay_progress(progress: DownloadProgress) -> None:
    """A spin child's download progress, for the watch of this thread (the spin's)."""
    found = getattr(_local, "watch", None)
    if found is not None and found.on_progress is not None:
        found.on_progress(progress.done, progress.total, progress.message)


class Cancelled(DevdError):
    """The user cancelled while parents were downloading."""


# -- the disk cache ------------------------------------------------------------------------
@dataclass(frozen=True)
class BlobFile:
    """A stored blob on local disk: ``raw`` as is, else gzip-framed (Metaflow's CAS v1)."""

    path: str
    raw: bool


def store_id(ds_root: str) -> str:
    return hashlib.sha1(ds_root.encode()).hexdigest()[:16]


def cached_path(root: str, ds_root: str, flow_name: str, key: str) -> str:
    return os.path.join(root, store_id(ds_root), flow_name, key[:2], key + ".raw")


def file_sha1(path: str) -> str:
    """sha1 of a file's bytes, read a few MB at a time (Metaflow's content address)."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def drop_if_damaged(path: str, key: str, why: str) -> bool:
    """True (after deleting it, with a warning in the log) when the cached blob at ``path``
    is not the content its key ``key`` names: a disk or a crash damaged it, the next
    read downloads it again. False when it is intact (then ``why`` was not its fault)."""
    try:
        if file_sha1(path) == key:
            return False
    except OSError:
        pass
    log.warning("cached blob %s is damaged (%s): dropped, downloading it again", path, why)
    with contextlib.suppress(OSError):
        os.unlink(path)
    return True


def cached(ds_root: str, flow_name: str, key: str, size: int = 0,
           root: str | None = None) -> BlobFile | None:
    """The blob of ``key`` in the disk cache, or None. Every blob was checked against its
    key on the way in; one whose size is not the ``size`` recorded for it is checked again
    (a truncated file is dropped, and downloaded again)."""
    path = cached_path(root or checked_cache_dir(), ds_root, flow_name, key)
    try:
        st = os.stat(path)
    except OSError:
        return None
    if size and st.st_size != size and \
            drop_if_damaged(path, key, f"{st.st_size} bytes, {size} recorded"):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # most recently used: trimmed last
    return BlobFile(path, True)


class _Stream:
    """A blob's bytes as a file for ``pickle.load``: ``readinto`` fills the unpickler's
    buffer a few MB at a time, so a big ``bytes`` inside the pickle (a numpy array's data)
    is decompressed straight into its final place, never into a second buffer."""

    def __init__(self, inner: io.BufferedIOBase, *also: io.BufferedIOBase) -> None:
        self._inner = inner
        self._also = also

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size <= CHUNK:
            return self._inner.read(size)
        buffer = bytearray(size)
        return bytes(buffer[:self.readinto(buffer)])

    def readinto(self, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            piece = self._inner.read(min(4 * CHUNK, len(view) - filled))
            if not piece:
                break
            view[filled:filled + len(piece)] = piece
            filled += len(piece)
        return filled

    def readline(self, size: int = -1) -> bytes:
        return self._inner.readline(size)

    def close(self) -> None:
        self._inner.close()
        for other in self._also:
            other.close()

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_blob(blob: BlobFile) -> _Stream:
    """The stored blob's content (decompressed as it is read, for a gzip-framed blob)."""
    import gzip

    handle = open(blob.path, "rb")  # noqa: SIM115 - closed by the _Stream
    if blob.raw:
        return _Stream(handle)
    return _Stream(gzip.GzipFile(fileobj=handle, mode="rb"), handle)


def trim_cache(limit: int | None = None, keep: set[str] | frozenset[str] = frozenset(),
               root: str | None = None) -> int:
    """Delete least recently used blobs until the cache fits ``limit``; returns bytes freed."""
    limit = cache_limit_bytes() if limit is None else limit
    entries = []
    for folder, _dirs, files in os.walk(root or cache_dir()):
        for name in files:
            if name.startswith(".part-"):  # a download killed mid-way (a cancelled child)
                with contextlib.suppress(OSError):
                    path = os.path.join(folder, name)
                    if time.time() - os.stat(path).st_mtime > 3600:
                        os.unlink(path)
            elif name.endswith((".gz", ".raw")):
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    entries.append((st.st_mtime, st.st_size, path))
    total = sum(e[1] for e in entries)
    freed = 0
    for _mtime, size, path in sorted(entries):
        if total - freed <= limit:
            break
        if path in keep:
            continue
        with contextlib.suppress(OSError):
            os.unlink(path)
            freed += size
    return freed
