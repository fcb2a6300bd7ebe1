"""Parent-task artifacts kept deserialized in memory, loaded through Metaflow's datastore.

Forked children read these objects through copy-on-write, so a spin never pays for
reading, decompressing or unpickling its parents again, and nothing a step does to
them (in-place mutation included) reaches this process.

Small artifacts load with the task. Large ones load on first use: a child that reads one
loads it itself (as Metaflow's spin would) and reports it, and the warm process then loads
it in the background, so the next spin finds it warm. A step that never reads a big
artifact never pays for it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import streamload
from .errors import DevdError
from .unchanged import Fingerprint, fingerprints

log = logging.getLogger("devd.warmstore")

EAGER_LIMIT_BYTES = int(float(os.environ.get("DEVD_EAGER_MB", "1")) * (1 << 20))

# (parent pathspec, artifact name) that a child had to load itself: reported to the parent.
LAZY_LOADED: list[tuple[str, str]] = []


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
    """One parent task: its artifacts loaded so far, and the Metaflow datastore behind them."""

    ref: TaskRef
    datastore: Any  # metaflow TaskDataStore in read mode
    values: dict[str, Any]
    size_bytes: int  # recorded size of the loaded artifacts
    load_seconds: float
    last_used: float = field(default_factory=time.monotonic)
    # big buffers as loaded (devd/common/unchanged.py): tells a step's in-place change from a read
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def recorded_size(self, name: str) -> int:
        return int(self.datastore._info.get(name, {}).get("size", 0) or 0)

    def ensure(self, names: Iterable[str]) -> None:
        """Load the named artifacts that are not warm yet (thread-safe)."""
        with self.lock:
            missing = [n for n in names if n in self.datastore._objects and n not in self.values]
            if not missing:
                return
            started = time.perf_counter()
            loaded = _load(self.ref, self.datastore, missing)
            self.values.update(loaded)
            self.fingerprints.update(fingerprints(loaded))
            self.size_bytes += sum(self.recorded_size(n) for n in missing)
            self.load_seconds += time.perf_counter() - started


class WarmTaskDataStore:
    """A read-only TaskDataStore look-alike that answers from memory.

    Metaflow's spin wraps the parent datastore in ``SpinTaskDatastore``, which needs
    ``_objects``, ``_info`` and item access; blob transfer on ``--persist`` uses the
    real datastore's storage, which attribute fall-through provides. An artifact not
    warm yet is loaded on the spot (in the child) and reported in ``LAZY_LOADED``.
    """

    def __init__(self, warm: WarmTask) -> None:
        self._warm = warm
        self._real = warm.datastore
        self._objects = dict(warm.datastore._objects)
        self._info = dict(warm.datastore._info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __getitem__(self, name: str) -> Any:
        values = self._warm.values
        if name in values:
            return values[name]
        if name not in self._objects:
            raise KeyError(name)
        loaded = _load(self._warm.ref, self._real, [name], rehome=False)  # short-lived child
        values.update(loaded)
        self._warm.fingerprints.update(fingerprints(loaded))
        LAZY_LOADED.append((self._warm.ref.pathspec, name))
        return values[name]

    def __contains__(self, name: str) -> bool:
        return name in self._objects

    def is_none(self, name: str) -> bool:
        return self[name] is None

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

    from .s3store import explain, metaflow_s3_client, store_name
    from .storeprobe import failure, reading

    impls = [d for d in DATASTORES if ref.ds_type == d.TYPE]
    if not impls:
        raise DevdError(
            f"{ref.pathspec} is stored in a '{ref.ds_type}' datastore that this Metaflow "
            "install does not know; install the extension that provides it"
        )
    flow_ds = FlowDataStore(ref.flow_name, storage_impl=impls[0], ds_root=ref.ds_root)
    if ref.ds_type == "s3":  # devd's timeouts and retry bound: an error, never a hang
        flow_ds._storage_impl.s3_client = metaflow_s3_client()
    try:  # Metaflow's client cache (decompressed blobs, task metadata) in a directory devd
        # checked to be the user's own, blobs verified before use (devd/common/clientcache.py)
        from metaflow.client.filecache import FileBlobCache, FileCache, TaskMetadataCache

        from .clientcache import file_cache

        cache = file_cache()
        flow_ds.set_metadata_cache(TaskMetadataCache(cache, ref.ds_type, ref.ds_root,
                                                     ref.flow_name))
        flow_ds.ca_store.set_blob_cache(FileBlobCache(
            cache, FileCache.flow_ds_id(ref.ds_type, ref.ds_root, ref.flow_name)))
    except Exception as exc:  # noqa: BLE001 - no cache: slower first loads, same results
        log.warning("no Metaflow client cache for %s (%s: %s): parents load without it",
                    ref.pathspec, type(exc).__name__, exc)
    # the store is checked only if the task's index is not cached (devd/common/storeprobe.py)
    with reading(f"parent task {ref.pathspec}"):
        try:
            return flow_ds.get_task_datastore(ref.run_id, ref.step, ref.task_id,
                                              attempt=ref.attempt)
        except DevdError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the datastore raises: one line naming the task
            failed = failure()
            if failed is not None:  # the store cannot be read at all: that line
                raise failed from None
            if ref.ds_type != "local":
                raise DevdError(f"cannot read parent task {ref.pathspec} from "
                                f"{store_name(ref.ds_type, ref.ds_root)}: "
                                f"{explain(exc)}") from None
            raise DevdError(
                f"parent task {ref.pathspec} is gone from {ref.ds_root} ({exc}); "
                "run the flow again with `devd run FLOW`"
            ) from None


def _load(ref: TaskRef, datastore: Any, names: list[str],
          rehome: bool = True) -> dict[str, Any]:
    try:
        return {name: streamload.rehome_array(value) if rehome else value
                for name, value in streamload.load_streamed(ref, datastore, names)}
    except DevdError:
        raise
    except Exception as exc:  # noqa: BLE001 - datastore and unpickling failures (any type): one line
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
        if ref.ds_type != "local":
            from .s3store import explain, store_name

            raise DevdError(f"cannot read parent task {ref.pathspec} from "
                            f"{store_name(ref.ds_type, ref.ds_root)}: {explain(exc)}") from None
        raise DevdError(
            f"parent task {ref.pathspec} is gone or unreadable ({type(exc).__name__}: "
            f"{detail}); run the flow again with `devd run FLOW`"
        ) from None


def _eager_names(datastore: Any, eager_limit: int | None) -> list[str]:
    limit = EAGER_LIMIT_BYTES if eager_limit is None else eager_limit
    return [n for n in datastore._objects
            if limit < 0 or n.startswith("_")
            or int(datastore._info.get(n, {}).get("size", 0) or 0) <= limit]


def load_task(ref: TaskRef, eager_limit: int | None = None,
              datastore: Any = None) -> WarmTask:
    """Open a recorded task and load its small artifacts (all of them with no limit)."""
    started = time.perf_counter()
    datastore = datastore if datastore is not None else open_task_datastore(ref)
    names = _eager_names(datastore, eager_limit)
    values = _load(ref, datastore, names)
    crcs = fingerprints(values)
    size = sum(int(datastore._info.get(n, {}).get("size", 0) or 0) for n in names)
    return WarmTask(ref, datastore, values, size, time.perf_counter() - started,
                    fingerprints=crcs)


def prefetch(refs: list[TaskRef]) -> dict[TaskRef, Any]:
    """Open the datastores of remote parent tasks in parallel and download what loading
    their small artifacts needs in one parallel batch; returns the opened datastores."""
    from concurrent.futures import ThreadPoolExecutor

    from .s3store import fetch_s3

    remote = [r for r in refs if r.ds_type == "s3"]
    if not remote:
        return {}
    if len(remote) == 1:
        return {remote[0]: open_task_datastore(remote[0])}
    with ThreadPoolExecutor(max_workers=min(8, len(remote)),
                            thread_name_prefix="devd-open") as pool:
        opened = dict(zip(remote, pool.map(open_task_datastore, remote), strict=True))
    groups: dict[tuple[str, str], list[TaskRef]] = {}
    for ref in remote:
        groups.setdefault((ref.ds_root, ref.flow_name), []).append(ref)
    for (ds_root, flow_name), group in groups.items():
        keys: list[str] = []
        sizes: dict[str, int] = {}
        owners: dict[str, str] = {}
        for ref in group:
            datastore = opened[ref]
            for name in _eager_names(datastore, None):
                if streamload.streamable(datastore, name):
                    key = datastore._objects[name]
                    keys.append(key)
                    sizes[key] = int(datastore._info.get(name, {}).get("size", 0) or 0)
                    owners.setdefault(key, ref.pathspec)
        fetch_s3(ds_root, flow_name, keys, f"{len(group)} parent tasks", sizes, owners)
    return opened


class WarmStore:
    """Warm tasks by pathspec with a memory budget and least-recently-used eviction."""

    def __init__(self, budget_bytes: int | None = None) -> None:
        self.budget_bytes = budget_bytes
        self._tasks: OrderedDict[str, WarmTask] = OrderedDict()
        self._lock = threading.RLock()
        # Called with the pathspecs of tasks that left the store (evicted, discarded).
        self.on_drop: list[Callable[[list[str]], None]] = []

    def _tell_dropped(self, pathspecs: list[str]) -> None:
        if pathspecs:
            for listener in list(self.on_drop):
                listener(pathspecs)

    def get(self, ref: TaskRef, datastore: Any = None) -> WarmTask:
        """The warm task for ``ref``, opened on first use (``datastore``: opened already)."""
        with self._lock:
            warm = self._tasks.get(ref.pathspec)
            if warm is not None and warm.ref == ref:
                self._tasks.move_to_end(ref.pathspec)
                warm.last_used = time.monotonic()
                return warm
        loaded = load_task(ref, datastore=datastore)
        with self._lock:
            self._tasks[ref.pathspec] = loaded
            self._tasks.move_to_end(ref.pathspec)
            self._evict(keep={ref.pathspec})
        return loaded

    def holds(self, refs: Iterable[TaskRef]) -> bool:
        """Whether every task of ``refs`` is warm now (``get_many`` would load none)."""
        with self._lock:
            return all((t := self._tasks.get(r.pathspec)) is not None and t.ref == r
                       for r in refs)

    def get_many(self, refs: Iterable[TaskRef]) -> list[WarmTask]:
        refs = list(refs)
        with self._lock:
            cold = [r for r in refs if r.pathspec not in self._tasks
                    or self._tasks[r.pathspec].ref != r]
        opened = prefetch(cold)  # remote parents: downloaded together, in parallel
        tasks = [self.get(r, opened.get(r)) for r in refs]
        with self._lock:  # the whole set must stay warm together
            for t in tasks:
                self._tasks[t.ref.pathspec] = t
        return tasks

    def ensure(self, ref: TaskRef, names: Iterable[str]) -> WarmTask:
        """Make the named artifacts of a task warm (loading what is missing)."""
        task = self.get(ref)
        task.ensure(names)
        with self._lock:
            self._evict(keep={ref.pathspec})
        return task

    def _evict(self, keep: set[str]) -> None:
        if self.budget_bytes is None:
            return
        evicted = []
        while self.total_bytes > self.budget_bytes:
            victim = next((p for p in self._tasks if p not in keep), None)
            if victim is None:
                break
            del self._tasks[victim]
            evicted.append(victim)
        self._tell_dropped(evicted)

    def discard(self, pathspecs: Iterable[str]) -> None:
        with self._lock:
            gone = [p for p in pathspecs if self._tasks.pop(p, None) is not None]
        self._tell_dropped(gone)

    def clear(self) -> None:
        with self._lock:
            gone = list(self._tasks)
            self._tasks.clear()
        self._tell_dropped(gone)

    @property
    def total_bytes(self) -> int:
        return sum(t.size_bytes for t in self._tasks.values())

    def snapshot(self) -> list[WarmTask]:
        with self._lock:
            return list(self._tasks.values())

    def __contains__(self, pathspec: str) -> bool:
        return pathspec in self._tasks
