"""Parent-task artifacts kept deserialized in memory, loaded once through Metaflow's datastore.

Forked children read these objects through copy-on-write, so a spin never pays for
reading, decompressing or unpickling its parents again, and nothing a step does to
them (in-place mutation included) reaches this process.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import DevdError


@dataclass(frozen=True)
class TaskRef:
    """Where a recorded task lives: its pathspec and the datastore that holds it."""

    flow_name: str
    run_id: str
    step: str
    task_id: str
    attempt: int
    ds_type: str
    ds_root: str

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_id}/{self.step}/{self.task_id}"

    @property
    def input_path(self) -> str:
        """The ``run/step/task/attempt`` form Metaflow's task runner takes."""
        return f"{self.run_id}/{self.step}/{self.task_id}/{self.attempt}"


@dataclass
class WarmTask:
    """One parent task's artifacts, deserialized, plus the Metaflow datastore they came from."""

    ref: TaskRef
    datastore: Any  # metaflow TaskDataStore in read mode
    values: dict[str, Any]
    size_bytes: int
    load_seconds: float
    last_used: float = field(default_factory=time.monotonic)


class WarmTaskDataStore:
    """A read-only TaskDataStore look-alike that answers from memory.

    Metaflow's spin wraps the parent datastore in ``SpinTaskDatastore``, which needs
    ``_objects``, ``_info`` and item access; blob transfer on ``--persist`` uses the
    real datastore's storage, which attribute fall-through provides.
    """

    def __init__(self, warm: WarmTask) -> None:
        self._warm = warm
        self._real = warm.datastore
        self._objects = dict(warm.datastore._objects)
        self._info = dict(warm.datastore._info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._warm.values[name]
        except KeyError:
            raise KeyError(name) from None

    def __contains__(self, name: str) -> bool:
        return name in self._warm.values

    def is_none(self, name: str) -> bool:
        return self._warm.values.get(name) is None

    def items(self) -> Iterable[tuple[str, str]]:
        return self._objects.items()

    def keys(self) -> Iterable[str]:
        return self._objects.keys()


class WarmFlowDataStore:
    """The ``orig_flow_datastore`` handed to Metaflow's task runner: warm tasks by pathspec."""

    def __init__(self, flow_name: str, tasks: Iterable[WarmTask]) -> None:
        self.flow_name = flow_name
        self._tasks = {(t.ref.run_id, t.ref.step, t.ref.task_id): t for t in tasks}
        first = next(iter(self._tasks.values()), None)
        self.TYPE = first.ref.ds_type if first else "local"

    def get_task_datastore(
        self, run_id: str, step_name: str, task_id: str, *args: Any, **kwargs: Any
    ) -> WarmTaskDataStore:
        try:
            return WarmTaskDataStore(self._tasks[(str(run_id), step_name, str(task_id))])
        except KeyError:
            raise DevdError(
                f"internal: task {run_id}/{step_name}/{task_id} was not loaded"
            ) from None


def open_task_datastore(ref: TaskRef) -> Any:
    """Metaflow's own TaskDataStore for a recorded task, in whatever datastore holds it."""
    from metaflow.datastore import FlowDataStore
    from metaflow.plugins import DATASTORES

    impls = [d for d in DATASTORES if d.TYPE == ref.ds_type]
    if not impls:
        raise DevdError(
            f"{ref.pathspec} is stored in a '{ref.ds_type}' datastore that this Metaflow "
            "install does not know; install the extension that provides it"
        )
    flow_ds = FlowDataStore(ref.flow_name, storage_impl=impls[0], ds_root=ref.ds_root)
    try:  # Metaflow's client cache: decompressed blobs, shared with its own spin and Client
        from metaflow.client.filecache import FileBlobCache, FileCache, TaskMetadataCache

        cache = FileCache()
        flow_ds.set_metadata_cache(TaskMetadataCache(cache, ref.ds_type, ref.ds_root,
                                                     ref.flow_name))
        flow_ds.ca_store.set_blob_cache(FileBlobCache(
            cache, FileCache.flow_ds_id(ref.ds_type, ref.ds_root, ref.flow_name)))
    except Exception:  # no cache: slower first loads, same results
        pass
    try:
        return flow_ds.get_task_datastore(ref.run_id, ref.step, ref.task_id, attempt=ref.attempt)
    except Exception as exc:
        raise DevdError(
            f"parent task {ref.pathspec} is gone from {ref.ds_root} ({exc}); "
            "run the flow again with `devd run FLOW`"
        ) from None


def load_task(ref: TaskRef) -> WarmTask:
    """Read and unpickle every artifact of a recorded task exactly once."""
    started = time.perf_counter()
    datastore = open_task_datastore(ref)
    names = list(datastore._objects)
    try:
        values = dict(datastore.load_artifacts(names))
    except Exception as exc:
        raise DevdError(
            f"parent task {ref.pathspec} is gone or unreadable ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}); "
            "run the flow again with `devd run FLOW`"
        ) from None
    size = sum(int(datastore._info.get(n, {}).get("size", 0) or 0) for n in names)
    return WarmTask(ref, datastore, values, size, time.perf_counter() - started)


class WarmStore:
    """Warm tasks by pathspec with a memory budget and least-recently-used eviction."""

    def __init__(self, budget_bytes: int | None = None) -> None:
        self.budget_bytes = budget_bytes
        self._tasks: OrderedDict[str, WarmTask] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, ref: TaskRef) -> WarmTask:
        """The warm task for ``ref``, loading it on first use."""
        with self._lock:
            warm = self._tasks.get(ref.pathspec)
            if warm is not None and warm.ref == ref:
                self._tasks.move_to_end(ref.pathspec)
                warm.last_used = time.monotonic()
                return warm
        loaded = load_task(ref)
        with self._lock:
            self._tasks[ref.pathspec] = loaded
            self._tasks.move_to_end(ref.pathspec)
            self._evict(keep={ref.pathspec})
        return loaded

    def get_many(self, refs: Iterable[TaskRef]) -> list[WarmTask]:
        refs = list(refs)
        tasks = [self.get(r) for r in refs]
        with self._lock:  # the whole set must stay warm together
            for t in tasks:
                self._tasks[t.ref.pathspec] = t
        return tasks

    def _evict(self, keep: set[str]) -> None:
        if self.budget_bytes is None:
            return
        while self.total_bytes > self.budget_bytes:
            victim = next((p for p in self._tasks if p not in keep), None)
            if victim is None:
                return
            del self._tasks[victim]

    def discard(self, pathspecs: Iterable[str]) -> None:
        with self._lock:
            for p in pathspecs:
                self._tasks.pop(p, None)

    def clear(self) -> None:
        with self._lock:
            self._tasks.clear()

    @property
    def total_bytes(self) -> int:
        return sum(t.size_bytes for t in self._tasks.values())

    def snapshot(self) -> list[WarmTask]:
        with self._lock:
            return list(self._tasks.values())

    def __contains__(self, pathspec: str) -> bool:
        return pathspec in self._tasks
