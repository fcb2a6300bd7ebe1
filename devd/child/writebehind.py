"""A throwaway spin's bookkeeping files, written only if something reads them.

Without ``--persist``, Metaflow's task bookkeeping for the spun task (its run and task
records, each metadata field as a file, the datastore's attempt and DONE markers: some
twenty files and their folders) goes to a scratch folder the spin removes when it ends
(devd/child/run.py). Written file by file they cost ~2 ms of every spin, and nobody reads
most of them. So in such a spin the spin metadata provider's and the spin storage's writes
are kept in order in memory, and carried out the moment anything reads through either of
them (``current.task``, ``current.run``, the Client on the spun task, a card reading its
task): a reader sees exactly the files Metaflow would have written by then. A spin nobody
reads from drops them with the scratch folder. ``--persist`` spins write as Metaflow does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

_queue: list[Callable[[], None]] = []
_files: set[str] = set()  # paths a queued write will create
_state = {"deferring": False}


def _later(write: Callable[[], None], path: str | None = None) -> None:
    _queue.append(write)
    if path is not None:
        _files.add(path)


def flush() -> None:
    """Write what is queued, in order (every read through the provider or storage does
    this first; later writes queue again)."""
    while _queue:
        _queue.pop(0)()
    _files.clear()


def install() -> None:
    """Queue the spin provider's and spin storage's writes; every read flushes first.

    Runs in the child of a spin without ``--persist`` (its spin storage is the scratch
    folder), after devd/child/metawrite.py installed its writer."""
    from metaflow.plugins.datastores.local_storage import LocalStorage
    from metaflow.plugins.datastores.spin_storage import SpinStorage
    from metaflow.plugins.metadata_providers.spin import SpinMetadataProvider

    from .metawrite import dump_json

    # The root itself is made now: finding it (the Client's ``spin@root``) reads no file.
    os.makedirs(SpinStorage.get_datastore_root_from_config(lambda *a, **k: None),
                exist_ok=True)
    _state["deferring"] = True
    provider: Any = SpinMetadataProvider

    def dump_json_to_file(cls: type, filepath: str, data: Any,
                          allow_overwrite: bool = False) -> None:
        if not _state["deferring"]:
            dump_json(filepath, data, allow_overwrite)
        elif allow_overwrite or not (filepath in _files or os.path.isfile(filepath)):
            _later(lambda: dump_json(filepath, data, allow_overwrite), filepath)

    def makedirs(cls: type, path: str) -> None:
        if _state["deferring"]:
            _later(lambda: os.makedirs(path, exist_ok=True))
        else:
            os.makedirs(path, exist_ok=True)

    provider._dump_json_to_file = classmethod(dump_json_to_file)
    provider._makedirs = classmethod(makedirs)
    for name in ("_get_object_internal", "_read_json_file", "_get_metadir"):
        _flush_before(provider, name)

    storage: Any = SpinStorage
    real_save = LocalStorage.save_bytes

    def save_bytes(self: Any, path_and_bytes_iter: Any, overwrite: bool = False,
                   len_hint: int = 0) -> None:
        if not _state["deferring"]:
            real_save(self, path_and_bytes_iter, overwrite, len_hint)
            return
        for path, obj in path_and_bytes_iter:  # read now: a stream may be closed later
            data, metadata = obj if isinstance(obj, tuple) else (obj, None)
            full = self.full_uri(path)
            if overwrite or not (full in _files or os.path.exists(full)):
                body = _Bytes(data.read())
                item: list[tuple[str, Any]] = [(path, (body, metadata) if metadata else body)]
                _later(partial(real_save, self, item, overwrite), full)

    storage.save_bytes = save_bytes
    for name in ("load_bytes", "is_file", "info_file", "size_file", "list_content"):
        _flush_before(storage, name)


class _Bytes:
    """A read-once stream over bytes already read (what save_bytes expects)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data


def _flush_before(owner: Any, name: str) -> None:
    """Make ``owner.name`` (a method or classmethod, maybe inherited) flush first."""
    real = next((base.__dict__[name] for base in owner.__mro__ if name in base.__dict__), None)
    if isinstance(real, classmethod):
        function = real.__func__

        def reader(cls: Any, *args: Any, **kwargs: Any) -> Any:
            flush()
            return function(cls, *args, **kwargs)

        setattr(owner, name, classmethod(reader))
    elif callable(real):
        method = real

        def read(self: Any, *args: Any, **kwargs: Any) -> Any:
            flush()
            return method(self, *args, **kwargs)

        setattr(owner, name, read)
