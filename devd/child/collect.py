"""The spun task's artifacts, read as Metaflow stores them, made into the result's rows.

Metaflow's ``persist`` decides what the task holds; devd reads the same names at that
moment, then tells apart what the step set (pickled back to the parent) from what it
passed down from a parent unchanged (named by parent pathspec, never copied).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from types import FunctionType, MethodType
from typing import Any

from ..common.bounds import one_line
from ..common.report import ArtifactRow
from ..common.summary import describe
from ..common.warmstore import WarmTaskDataStore
from .request import Unpicklable, client_value
from .state import State

# Above this size a value's content hash is not computed: its diff shows "unknown".
DIFF_LIMIT_BYTES = 64 << 20

_NOT_LOADED = object()


@dataclass
class Sink:
    """What the output datastore's ``persist`` saw, read by the result afterwards."""

    flow_datastore: Any = None
    produced: dict[str, Any] = field(default_factory=dict)  # name -> value on the flow
    passdown: dict[str, str] = field(default_factory=dict)  # name -> content hash
    next_steps: list[str] = field(default_factory=list)


@dataclass
class Collected:
    """The task's artifacts as the result carries them."""

    rows: list[ArtifactRow] = field(default_factory=list)  # one per public artifact
    values: dict[str, bytes] = field(default_factory=dict)  # name -> pickled, set in the step
    parent_values: dict[str, tuple[str, str]] = field(default_factory=dict)
    hashes: dict[str, str | None] = field(default_factory=dict)  # name -> content sha1
    public: dict[str, Any] = field(default_factory=dict)  # as the Client gives them
    unloaded: dict[str, tuple[Any, str]] = field(default_factory=dict)  # (parent task, name)
    kept: dict[str, str] = field(default_factory=dict)  # parent values read, shown unchanged

    def every_public_value(self) -> dict[str, Any]:
        """The public values, reading the ones nobody loaded yet (a card shows them all)."""
        for name, (task, source) in self.unloaded.items():
            self.public[name] = client_value(name, WarmTaskDataStore(task)[source])
        return self.public


def capture_output_datastore(flow_datastore: Any, sink: Sink) -> None:
    """Wrap the output TaskDataStore's ``persist`` to read the artifacts as it stores them."""
    original_get = flow_datastore.get_task_datastore

    def get_task_datastore(*args: Any, **kwargs: Any) -> Any:
        ds = original_get(*args, **kwargs)
        if kwargs.get("mode") == "w":
            real_persist = ds.persist

            def persist(flow: Any) -> None:
                _read_artifacts(flow, sink)
                real_persist(flow)

            ds.persist = persist
            _read_merged_from_origin(ds)
        return ds

    flow_datastore.get_task_datastore = get_task_datastore
    sink.flow_datastore = flow_datastore


def _read_merged_from_origin(ds: Any) -> None:
    """An artifact ``merge_artifacts`` passed down is read from the input it came from.

    The merge records only the input's content hash in the task's store, whose blobs are
    in the parents' datastores, not in the spin's: reading ``self.x`` right after the
    merge would look in the empty spin store (Metaflow's own spin fails there).
    """
    real_passdown, real_load = ds.passdown_partial, ds.load_artifacts
    origins: dict[str, Any] = {}

    def passdown_partial(origin: Any, variables: Any) -> None:
        real_passdown(origin, variables)
        for var in variables:
            sha = getattr(origin, "_objects", {}).get(var)
            if sha and ds._objects.get(var) == sha:
                origins[var] = origin

    def load_artifacts(names: Any) -> Any:
        names = list(names)
        rest = [n for n in names if n not in origins]
        loaded = dict(real_load(rest)) if rest else {}
        for name in names:
            yield name, (origins[name][name] if name in origins else loaded[name])

    ds.passdown_partial = passdown_partial
    ds.load_artifacts = load_artifacts


def _is_artifact(flow: Any, var: str, val: Any) -> bool:
    """The test Metaflow's TaskDataStore.persist applies to ``dir(flow)``."""
    from metaflow.parameters import Parameter

    if var.startswith("__") or var in flow._EPHEMERAL:
        return False
    cls_attr = getattr(flow.__class__, var, None)
    if isinstance(cls_attr, property):
        return False
    return not isinstance(val, MethodType | FunctionType | Parameter)


def _read_artifacts(flow: Any, sink: Sink) -> None:
    """Every artifact the task will hold: set in the step, or passed down from a parent."""
    for name, value in State.spin_artifacts.items():
        # An override is the parent state this spin ran with: pass it on as such.
        if name not in flow.__dict__ and not name.startswith("_"):
            try:
                setattr(flow, name, value)
            except AttributeError:  # a read-only property of the flow class: no artifact
                pass
    produced: dict[str, Any] = {}
    for var in dir(flow):
        try:
            val = getattr(flow, var)
        except Exception:  # noqa: BLE001 - a property raising (``input`` outside a foreach)
            continue  # is no artifact: Metaflow's persist skips properties unread
        if _is_artifact(flow, var, val):
            produced[var] = val
    sink.produced = produced
    sink.passdown = dict(flow._datastore._objects) if flow._datastore is not None else {}
    sink.next_steps = list(flow._transition[0]) if flow._transition else []


def _sha_index() -> dict[str, tuple[str, str, Any, Any]]:
    """Content hash -> (parent pathspec, name, value or _NOT_LOADED, the parent task)."""
    index = {}
    for task in State.warm_tasks:
        for name, sha in task.datastore._objects.items():
            index[sha] = (task.ref.pathspec, name, task.values.get(name, _NOT_LOADED), task)
    return index


def _unchanged_parent_objects(produced: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Artifacts that are a parent's own big value, read but not changed: name ->
    (parent pathspec, its name, how that was shown).

    Reading ``self.x`` caches it on the flow, so Metaflow sees it as set by the step; the
    same object, shown unchanged (devd/common/unchanged.py: the page map, else crc32s), is
    the parent's value, and needs no copy back.
    """
    from ..common.unchanged import proof

    owners = {}
    for task in State.warm_tasks:
        for name, mark in task.fingerprints.items():
            if name in task.values:
                owners[id(task.values[name])] = (task.ref.pathspec, name, mark)
    found = {}
    for name, value in produced.items():
        owner = owners.get(id(value))
        if owner is not None:
            how = proof(value, owner[2])
            if how is not None:
                found[name] = (owner[0], owner[1], how)
    return found


def _describe_unloaded(name: str, task: Any, source: str) -> ArtifactRow:
    """A row for a passed-down artifact nobody has read yet: from its recorded metadata."""
    info = task.datastore._info.get(source, {})
    kind = str(info.get("type", "object"))
    if kind.startswith("<class '") and kind.endswith("'>"):
        kind = kind[len("<class '"):-2]
    if kind.startswith("numpy."):
        kind = "numpy." + kind.rsplit(".", 1)[-1]
    size = int(info.get("size", 0) or 0)
    return ArtifactRow(name, kind, "not loaded (the step did not read it)", size)


def _content_hash(value: Any) -> str | None:
    """Metaflow's content address of a value (sha1 of its protocol-4 pickle), if cheap."""
    import hashlib

    from ..common.summary import size_bytes

    size = size_bytes(value)
    if size is not None and size > DIFF_LIMIT_BYTES:
        return None
    try:
        return hashlib.sha1(pickle.dumps(value, protocol=4)).hexdigest()
    except Exception:  # noqa: BLE001 - unpicklable: no hash, and _pickle_problem says why
        return None


# Values of these exact types always pickle, by plain pickle as by cloudpickle.
_PLAIN = frozenset({int, float, str, bool, bytes, type(None)})


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def _pickle_problem(value: Any) -> str | None:
    """Why Metaflow could not store ``value`` (it pickles artifacts), or None if it can."""
    try:
        pickle.Pickler(_Discard(), protocol=4).dump(value)
    except Exception as exc:  # noqa: BLE001 - any __reduce__ may raise: that is the answer
        return f"{type(exc).__name__}: {one_line(str(exc), 500)}"
    return None


def collect(sink: Sink, notices: list[str]) -> Collected:
    """The artifacts ``persist`` saw, as rows, pickled values and parent references."""
    import cloudpickle

    req = State.request
    produced, passdown = sink.produced, sink.passdown
    shas = _sha_index() if passdown else {}
    out = Collected()
    names = sorted(n for n in set(produced) | set(passdown)
                   if req.want_private or not n.startswith("_"))
    read_only = _unchanged_parent_objects(produced)
    for name in names:
        hashed: Any = _NOT_LOADED  # not computed yet
        if name not in produced and name in State.spin_artifacts:
            produced[name] = State.spin_artifacts[name]  # an overridden Parameter, say
        if name in read_only:  # a big parent value the step only read: passed down as is
            out.parent_values[name] = read_only[name][:2]
            out.kept[name] = read_only[name][2]
            value = produced.pop(name)
        elif name in produced:
            value = produced[name]
            hashed = _content_hash(value) if req.want_diff and not name.startswith("_") \
                else None
            plain = type(value) in _PLAIN
            problem = _pickle_problem(value) if hashed is None and not plain else None
            if problem:  # Metaflow pickles every artifact it stores: say so in every spin
                notices.append(f"artifact `{name}` cannot be pickled ({problem}): a real run "
                               "would fail to store it")
            if req.want_values and plain:  # what cloudpickle would write, ten times quicker
                out.values[name] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            elif req.want_values:
                try:  # pickled here, once: an unpicklable value must not sink the result
                    out.values[name] = cloudpickle.dumps(value,
                                                         protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:  # noqa: BLE001 - the stand-in says why
                    out.values[name] = cloudpickle.dumps(
                        Unpicklable(type(value).__qualname__, repr(value)[:200],
                                    one_line(str(exc), 500)))
        else:
            hit = shas.get(passdown[name])
            if hit is None:
                continue
            out.parent_values[name] = (hit[0], hit[1])
            value = hit[2]
            if value is _NOT_LOADED:
                if not name.startswith("_"):
                    out.rows.append(_describe_unloaded(name, hit[3], hit[1]))
                    out.unloaded[name] = (hit[3], hit[1])
                    if req.want_diff:
                        out.hashes[name] = passdown[name]
                continue
        if not name.startswith("_"):
            shown = client_value(name, value)
            out.rows.append(describe(name, shown))
            out.public[name] = shown
            if req.want_diff:
                out.hashes[name] = passdown[name] if name not in produced and name in passdown \
                    else (_content_hash(value) if hashed is _NOT_LOADED else hashed)
    return out
