"""Reading a parent task's artifacts straight from their stored files: Metaflow's pickled
artifacts decompressed and unpickled as a stream (from the local datastore's files, or
devd's disk cache of S3 blobs), big arrays then moved onto huge pages, so a fork of the warm
process copies few page-table entries (devd/common/warmstore.py keeps what is loaded)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import DevdError

if TYPE_CHECKING:
    from .warmstore import TaskRef

HUGE_ARRAY_BYTES = 8 << 20


def rehome_array(value: Any) -> Any:
    """A big numpy array moved onto huge pages.

    Unpickled arrays live in small pages; forking a process that holds a 1 GB array in
    small pages copies 262,144 page-table entries (~35 ms here), in huge pages 512. The
    kernel collapses the pages in place (``MADV_COLLAPSE``, Linux 6.1+: no second copy
    of the array, so loading peaks at the array's size); elsewhere the array is copied
    into numpy's own (huge-page) memory.
    """
    np = sys.modules.get("numpy")
    if np is None or not isinstance(value, np.ndarray):
        return value
    if value.nbytes < HUGE_ARRAY_BYTES or value.dtype.hasobject:
        return value
    from .hugemap import arm, collapse_in_place

    arm()  # the probe its forked children test the page map's huge stretches on
    if value.flags.c_contiguous and collapse_in_place(value.ctypes.data, value.nbytes):
        return value
    return np.array(value, copy=True, order="K")


_PICKLED = frozenset(["pickle-v2", "pickle-v4", "gzip+pickle-v2", "gzip+pickle-v4"])


def streamable(datastore: Any, name: str) -> bool:
    """Whether Metaflow would read ``name`` with its pickle serializer (then devd streams
    it); artifacts of other serializers go through Metaflow's ``load_artifacts``."""
    info = datastore._info.get(name, {})
    encoding = info.get("encoding", "gzip+pickle-v2")
    if encoding not in _PICKLED:
        return False
    try:
        from metaflow.datastore.artifacts.serializer import SerializationMetadata

        metadata = SerializationMetadata(obj_type=info.get("type", "object"),
                                         size=info.get("size", 0), encoding=encoding,
                                         serializer_info=info.get("serializer_info", {}))
        for serializer in datastore._serializers:
            if serializer.can_deserialize(metadata):
                return getattr(serializer, "TYPE", None) == "pickle"
    except (ImportError, AttributeError):  # an older Metaflow: pickle is all it has
        return True
    return False


def blob_files(ref: TaskRef, datastore: Any, keys: list[str]) -> dict[str, Any]:
    """Local files holding the blobs ``keys`` as Metaflow stored them: the datastore's own
    files for a local datastore, devd's disk cache (downloaded once) for S3."""
    from .blobcache import BlobFile
    from .s3store import fetch_s3

    if not keys:
        return {}
    if ref.ds_type == "s3":
        sizes = {datastore._objects[n]: int(datastore._info.get(n, {}).get("size", 0) or 0)
                 for n in datastore._objects}
        return fetch_s3(ref.ds_root, ref.flow_name, keys, ref.pathspec,
                        {k: sizes.get(k, 0) for k in keys})
    if ref.ds_type != "local":
        return {}
    ca_store = datastore._ca_store
    storage = ca_store._storage_impl
    paths = {storage.path_join(ca_store._prefix, key[:2], key): key for key in keys}
    found = {}
    with storage.load_bytes(list(paths)) as loaded:
        for path, local, meta in loaded:
            if path not in paths:
                continue
            if local is None:  # Metaflow's own load would fail on it with a TypeError
                name = next((n for n, k in datastore._objects.items() if k == paths[path]),
                            paths[path])
                raise DevdError(
                    f"artifact '{name}' of parent task {ref.pathspec} is missing from "
                    f"{ref.ds_root} (its blob {storage.full_uri(path)} was deleted); "
                    "run the flow again with `devd run FLOW`")
            found[paths[path]] = BlobFile(local, bool(meta and meta.get("cas_raw")))
    return found


def load_streamed(ref: TaskRef, datastore: Any,
                   names: list[str]) -> Iterable[tuple[str, Any]]:
    """Artifacts read straight from their stored files: decompressed and unpickled as a
    stream, so loading never holds the compressed blob, the decompressed bytes and the
    object at once (peak: about the object's size)."""
    import pickle

    from .blobcache import drop_if_damaged, open_blob

    stream = [n for n in names if n in datastore._objects and streamable(datastore, n)]
    # a local datastore's files are looked up for every name: a deleted one is one line
    present = [n for n in names if n in datastore._objects] if ref.ds_type == "local" else stream
    files = blob_files(ref, datastore, [datastore._objects[n] for n in present])
    rest = [n for n in names if n not in stream or datastore._objects[n] not in files]
    if rest:
        yield from datastore.load_artifacts(rest)
    for name in stream:
        key = datastore._objects[name]
        blob = files.get(key)
        if blob is None:
            continue
        try:
            with open_blob(blob) as handle:
                value = pickle.load(handle)
        except Exception:
            # devd's S3 cache: a blob damaged on disk (it was whole when it came in) is
            # dropped and downloaded again; anything else is the artifact's own failure
            if ref.ds_type != "s3" or not drop_if_damaged(blob.path, key, "it did not unpickle"):
                raise
            blob = blob_files(ref, datastore, [key])[key]
            with open_blob(blob) as handle:
                value = pickle.load(handle)
        yield name, value
