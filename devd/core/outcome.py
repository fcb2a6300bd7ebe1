"""A spin's child outcome made into its ``SpinResult``, in the warm process.

The child reports artifacts as pickles, or as "the parent's own value" (then the warm
object itself is used, loaded only when read); a crash without a report is a result too.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
from collections.abc import Callable
from typing import Any

from ..child.request import ChildResult, Unpicklable, client_value
from ..common.bounds import bound_error, one_line
from ..common.errors import DevdError
from ..common.forking import ChildOutcome
from ..common.report import SpinError
from ..common.warmstore import TaskRef, WarmTask
from .parents import SpinPlan
from .result import Artifacts, SpinResult

# Loads a parent's artifact into the warm store: (task, artifact name) -> value.
ParentValue = Callable[[TaskRef, str], Any]
# Warms what the child had to read itself: (tasks by pathspec, [(pathspec, name)]).
WarmLater = Callable[[dict[str, WarmTask], list[tuple[str, str]]], None]


def build_result(flow_file: str, flow_name: str, plan: SpinPlan, warm_tasks: list[WarmTask],
                 outcome: ChildOutcome, *, persist: bool, timings: dict[str, float],
                 total: float, parent_value: ParentValue,
                 warm_later: WarmLater | None, lazy_values: bool = False) -> SpinResult:
    """The result of the spin of ``plan`` that ended with ``outcome``.

    ``lazy_values`` (a warm worker's spin): the values the step set are unpickled only when
    read, and the result keeps them as the child pickled them, for the daemon.

    A ``devd.DevdError`` the child reports (bad overrides or Configs) is raised here: it
    is the caller's bad input, not the step's failure.
    """
    recorded_ds = (plan.parents[0].ds_type, plan.parents[0].ds_root) if plan.parents \
        else None
    child = outcome.value if isinstance(outcome.value, ChildResult) else None
    if child is None:
        crash = (outcome.crashed or "the step process ended without a result").strip()
        message = crash.splitlines()[-1] if crash else "no result"
        bounded = bound_error({"type": "devd.ChildCrashed", "message": message,
                               "traceback": crash})
        crashed = SpinError("devd.ChildCrashed", bounded["message"], flow_file, None,
                            bounded["traceback"])
        return SpinResult(flow_name, plan.step, False, {}, [], crashed, outcome.stdout,
                          outcome.stderr, [], total, plan.parent_pathspecs,
                          plan.origin_run_id, timings=timings,
                          recorded_task=plan.recorded_task, recorded_ds=recorded_ds)
    if child.error and child.error.type == "devd.DevdError":
        raise DevdError(child.error.message)
    by_pathspec = {t.ref.pathspec: t for t in warm_tasks}
    for phase, seconds in child.phases.items():
        timings[f"child.{phase}"] = seconds
    loaded: dict[str, Any] = {}
    deferred: dict[str, Callable[[], Any]] = {}
    for name, blob in child.values.items():
        if lazy_values:
            deferred[name] = functools.partial(_unpickled, name, blob, child.notices)
        else:
            loaded[name] = _unpickled(name, blob, child.notices)
    for name, (parent, source) in child.parent_values.items():
        task = by_pathspec[parent]
        if source in task.values:
            loaded[name] = task.values[source]
        else:
            deferred[name] = functools.partial(parent_value, task.ref, source)
    if child.lazy_loaded and warm_later is not None:
        warm_later(by_pathspec, child.lazy_loaded)
    values = Artifacts(loaded, deferred)
    # As the Client shows them (an IncludeFile's content); chained spins get the raw ones.
    public = Artifacts({k: client_value(k, v) for k, v in loaded.items()
                        if not k.startswith("_")},
                       {k: functools.partial(client_value_of, k, v)
                        for k, v in deferred.items() if not k.startswith("_")})
    pathspec: str | None = None
    if persist and child.persisted_root and child.run_id and child.task_id:
        pathspec = f"{flow_name}/{child.run_id}/{plan.step}/{child.task_id}"
    return SpinResult(
        flow=flow_name,
        step=plan.step,
        ok=child.ok,
        artifacts=public,
        all_values=values,
        passed_down=dict(child.parent_values),
        artifact_rows=child.artifacts,
        error=child.error,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        next_steps=child.next_steps,
        duration_s=total - child.phases.get("paused", 0.0),  # a debug spin's stops left out
        parents=plan.parent_pathspecs,
        origin_run_id=plan.origin_run_id,
        pathspec=pathspec,
        persisted=persist and child.persisted_root is not None,
        card_components=child.cards,
        cards=[c["html"] for c in child.card_html],
        card_info=[{"id": c["id"], "type": c["type"], "uuid": c.get("uuid")}
                   for c in child.card_html],
        recorded_task=plan.recorded_task,
        recorded_ds=recorded_ds,
        artifacts_loaded_by_step=sorted(name for _, name in child.lazy_loaded),
        artifact_hashes=dict(child.hashes),
        values_bytes=sum(len(blob) for blob in child.values.values()),
        value_blobs=dict(child.values) if lazy_values else {},
        parents_kept=dict(child.kept),
        notices=child.notices,
        timings=timings,
        _persist_root=os.path.dirname(child.persisted_root) if child.persisted_root else None,
    )


class _NamingUnpickler(pickle.Unpickler):
    """Remembers the first class a pickle names: what an artifact was, if it cannot load."""

    first: str | None = None

    def find_class(self, module: str, name: str) -> Any:
        self.first = self.first or f"{module}.{name}"
        return super().find_class(module, name)


def _unpickled(name: str, blob: bytes, notices: list[str]) -> Any:
    """An artifact the child sent. One that cannot be rebuilt outside the spin (a Client
    ``Task`` of the throwaway spin, whose metadata went with the child) stands in as
    ``Unpicklable`` with a notice; the spin itself did not fail."""
    unpickler = _NamingUnpickler(io.BytesIO(blob))
    try:
        return unpickler.load()
    except Exception as exc:  # noqa: BLE001 - any class's __setstate__ may raise: a notice
        detail = str(exc).strip().split("\n", 1)
        reason = f"{type(exc).__name__}: {one_line(detail[0], 500)}"
        notices.append(f"artifact `{name}` cannot be loaded outside the spin ({reason})")
        return Unpicklable(unpickler.first or "object", name, reason)


def client_value_of(name: str, load: Callable[[], Any]) -> Any:
    """A passed-down value as the Client shows it, loaded when first asked for."""
    return client_value(name, load())
