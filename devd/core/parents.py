"""Find the recorded tasks a spin takes its parents from, with Metaflow's Client.

By default: the newest run of the flow in the current namespace that has what the
step needs, even a run that failed later (fixing the failing step is the point).
Or an explicit pathspec: ``step``, ``run/step``, ``Flow/run/step`` or ``Flow/run/step/task``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..common.errors import DevdError
from ..common.warmstore import TaskRef
from .flowmodel import FlowModel


@dataclass(frozen=True)
class Target:
    """What the user asked to spin."""

    step: str
    run_id: str | None = None
    task_id: str | None = None


@dataclass(frozen=True)
class SpinPlan:
    """The parents of one spin, in the order the step's ``inputs`` will see them."""

    step: str
    origin_run_id: str
    parents: tuple[TaskRef, ...]
    split_index: int | None
    recorded_task: str | None  # pathspec of the step's task in that run, if it ran
    # A spin of a task's pathspec is that task's attempt (``current.retry_count``); a spin
    # by step name is a new task's first attempt.
    attempt: int = 0
    # current.origin_run_id: the run this one resumed, as its tasks recorded (None if none)
    resumed_from: str | None = None
    run_tags: tuple[str, ...] = ()  # current.tags: the user tags of the parents' run

    @property
    def parent_pathspecs(self) -> list[str]:
        return [p.pathspec for p in self.parents]


def parse_target(model: FlowModel, spec: str) -> Target:
    """Read ``step``, ``run/step``, ``Flow/run/step``, ``run/step/task``, ``Flow/run/step/task``."""
    parts = [p for p in str(spec).strip().split("/") if p]
    if parts and parts[0] == model.flow_name:
        parts = parts[1:]
        if len(parts) not in (2, 3):
            raise DevdError(
                f"'{spec}' is not a pathspec of {model.flow_name}: use STEP, RUN/STEP "
                f"or {model.flow_name}/RUN/STEP/TASK"
            )
    if len(parts) == 1:
        target = Target(parts[0])
    elif len(parts) == 2:
        target = Target(parts[1], run_id=parts[0])
    elif len(parts) == 3:
        target = Target(parts[1], run_id=parts[0], task_id=parts[2])
    else:
        raise DevdError(
            f"'{spec}' is not a step or pathspec: use STEP, RUN/STEP or "
            f"{model.flow_name}/RUN/STEP/TASK"
        )
    model.step(target.step)  # unknown step: lists the steps
    return target


def _default_datastore() -> tuple[str, str] | None:
    from metaflow.metaflow_config import DEFAULT_DATASTORE
    from metaflow.plugins import DATASTORES

    impls = [d for d in DATASTORES if d.TYPE == DEFAULT_DATASTORE]
    if not impls:
        return None
    root = impls[0].get_datastore_root_from_config(lambda *a, **k: None, create_on_absent=False)
    return (DEFAULT_DATASTORE, root) if root else None


def _ref(task: Any, fallback: tuple[str, str] | None = None) -> TaskRef:
    """A task's location; ``_parameters`` records none, so it takes ``fallback``'s."""
    flow_name, run_id, step, task_id = task.path_components
    meta = task.metadata_dict
    ds_type = meta.get("ds-type")
    ds_root = meta.get("ds-root")
    if (not ds_type or not ds_root) and step == "_parameters":
        ds_type, ds_root = fallback or _default_datastore() or (None, None)
    if not ds_type or not ds_root:
        raise DevdError(
            f"{task.pathspec} records no datastore (ds-type/ds-root metadata); "
            "run the flow again with `devd run FLOW`"
        )
    return TaskRef(flow_name, run_id, step, task_id, int(task.current_attempt), ds_type, ds_root)


def _usable(task: Any) -> bool:
    """Finished, and ok as Metaflow's runtime judges a task to go on from: its
    ``_task_ok`` (``Task.finished``), true also for a task whose exception ``@catch``
    handled (that one is not ``successful``, yet the run went on from it)."""
    try:
        return bool(task.finished)
    except Exception:  # noqa: BLE001 - records no store can read (any error): not a task to
        _unreachable()  # go on from; the next candidate is looked at instead, unless the
        return False  # store itself cannot be read


def _written(task: Any) -> bool:
    """The task has stored its artifacts: it ended (well or not), it is not still running."""
    try:
        return "_graph_info" in task
    except Exception:  # noqa: BLE001 - unreadable records: as if still running
        _unreachable()
        return False


def _unreachable() -> None:
    """A read of Metaflow's datastore failed because the store cannot be read at all (the
    check before it failed): that is the one line to say, not the next candidate's."""
    from ..common.storeprobe import failure

    failed = failure()
    if failed is not None:
        raise failed


def _order_key(task: Any) -> tuple[tuple[int, ...], int]:
    """Foreach position (outermost first), then creation order: first split first."""
    path = task.metadata_dict.get("foreach-execution-path") or ""
    position = tuple(int(part.rsplit(":", 1)[1]) for part in path.split(",")
                     if ":" in part and part.rsplit(":", 1)[1].isdigit())
    return (position, int(task.id) if task.id.isdigit() else 0)


def _sorted_parents(model: FlowModel, step: str, tasks: list[Any]) -> list[Any]:
    """Join inputs in the order the original run saw them: foreach index, or branch order."""
    if model.join_type(step) == "foreach":
        return sorted(tasks, key=_order_key)
    order = {name: i for i, name in enumerate(model.steps[step].in_funcs)}
    return sorted(tasks, key=lambda t: (order.get(t.path_components[2], 99), _order_key(t)))


def _plan_from_task(model: FlowModel, task: Any) -> SpinPlan:
    """Parents of a recorded task of the step, exactly as Metaflow's Client links them."""
    from metaflow import Step

    step = task.path_components[2]
    run_id = task.path_components[1]
    meta = task.metadata_dict
    own_ds = (meta["ds-type"], meta["ds-root"]) if "ds-type" in meta and "ds-root" in meta \
        else None
    if step == model.start_step:
        params = Step(f"{model.flow_name}/{run_id}/_parameters", _namespace_check=False).task
        parents: list[Any] = [params]
    else:
        parents = _taken_path(model, task, list(task.parent_tasks))
    if not parents:
        raise DevdError(f"{task.pathspec}: Metaflow records no parent tasks for it")
    missing = [p.pathspec for p in parents if not _usable(p)]
    if missing:
        raise DevdError(
            f"parent task {missing[0]} of {task.pathspec} did not finish successfully; "
            "spin its step first or run the flow again"
        )
    parents = _sorted_parents(model, step, parents)
    split_index = task.index if _follows_foreach(model, step) else None
    refs = tuple(_ref(p, own_ds) for p in parents)
    return SpinPlan(step, run_id, refs, split_index, task.pathspec)


def _artifact(task: Any, name: str, default: Any = None) -> Any:
    try:
        return task[name].data if name in task else default
    except Exception:  # noqa: BLE001 - unpickling runs the flow's classes: any error, no value
        return default


def _taken_path(model: FlowModel, task: Any, parents: list[Any]) -> list[Any]:
    """The one parent a switch or recursive step's task came from.

    ``Task.parent_tasks`` lists every task of every step that *may* lead to the step (the
    cases of a switch, each iteration of a recursive step, the task itself). A step that
    is not a join has one parent: the task whose recorded ``_transition`` chose this step,
    and, for a recursive step, the iteration before this one (``_iteration_stack``), or
    the task that entered the loop for its first iteration.
    """
    step = task.path_components[2]
    if model.steps[step].type == "join" or len(parents) <= 1:
        return parents
    chosen = [p for p in parents if p.pathspec != task.pathspec
              and step in ((_artifact(p, "_transition") or ((),))[0] or ())]
    if step in model.steps[step].out_funcs:  # recursive: which iteration is this?
        stack = _artifact(task, "_iteration_stack") or [0]
        iteration = stack[-1]
        if iteration == 0:
            chosen = [p for p in chosen if p.path_components[2] != step]
        else:
            chosen = [p for p in chosen if p.path_components[2] == step
                      and (_artifact(p, "_iteration_stack") or [None])[-1] == iteration - 1]
    if len(chosen) != 1:
        raise DevdError(
            f"{task.pathspec}: cannot tell which of {len(parents)} possible parent tasks "
            "it came from (switch/recursive step); spin it by step name instead"
        )
    return chosen


def _follows_foreach(model: FlowModel, step: str) -> bool:
    info = model.steps[step]
    return len(info.in_funcs) == 1 and model.steps[info.in_funcs[0]].type == "foreach"


def _tasks_of(run: Any, step: str) -> list[Any]:
    try:
        return sorted(run[step].tasks(), key=_order_key)
    except KeyError:
        return []


def _plan_from_parent_steps(model: FlowModel, run: Any, step: str) -> SpinPlan | None:
    """The step never ran in ``run``: take its parents from its parent steps' tasks."""
    info = model.steps[step]
    run_id = run.id
    if step == model.start_step:
        params = _tasks_of(run, "_parameters")
        if not params or not _usable(params[0]):
            return None
        return SpinPlan(step, run_id, (_ref(params[0]),), None, None)
    per_step = {p: _tasks_of(run, p) for p in info.in_funcs}
    if any(not tasks or not all(_usable(t) for t in tasks) for tasks in per_step.values()):
        return None
    join_type = model.join_type(step)
    if join_type == "foreach":
        tasks = per_step[info.in_funcs[0]]
        outer = _outer_path(tasks[0])
        group = [t for t in tasks if _outer_path(t) == outer]
        if not _every_split(model, run, step, outer, len(group)):
            return None  # a run still going (or one that stopped) has not made them all
        return SpinPlan(step, run_id, tuple(_ref(t) for t in sorted(group, key=_order_key)),
                        None, None)
    if join_type == "linear":
        first = per_step[info.in_funcs[0]][0]
        path = first.metadata_dict.get("foreach-execution-path")
        chosen = []
        for parent_step in info.in_funcs:
            match = [t for t in per_step[parent_step]
                     if t.metadata_dict.get("foreach-execution-path") == path]
            if not match:
                return None
            chosen.append(match[0])
        return SpinPlan(step, run_id, tuple(_ref(t) for t in chosen), None, None)
    parent = per_step[info.in_funcs[0]][0]
    split_index = 0 if _follows_foreach(model, step) else None
    if split_index is not None:
        num = parent["_foreach_num_splits"].data if "_foreach_num_splits" in parent else None
        if not num:
            return None
    return SpinPlan(step, run_id, (_ref(parent),), split_index, None)


def _every_split(model: FlowModel, run: Any, join: str, outer: str, count: int) -> bool:
    """Whether ``count`` inputs are every split of the foreach ``join`` closes."""
    foreach = model.steps[join].split_parents[-1]
    for task in _tasks_of(run, foreach):
        if (task.metadata_dict.get("foreach-execution-path") or "") == outer:
            try:
                return int(task["_foreach_num_splits"].data) == count
            except Exception:  # noqa: BLE001 - unreadable: not known to be every split
                return False
    return False


def _outer_path(task: Any) -> str:
    path = task.metadata_dict.get("foreach-execution-path") or ""
    return ",".join(path.split(",")[:-1])


def _resumed_from(plan: SpinPlan) -> str | None:
    """The ``origin-run-id`` the task (or, for a step that never ran, its parents) recorded:
    the run a resumed run came from; a run that was not resumed records none."""
    from metaflow import Task

    pathspec = plan.recorded_task or next(
        (p.pathspec for p in plan.parents if p.step != "_parameters"), None)
    if pathspec is None:
        return None
    origin = Task(pathspec, _namespace_check=False).metadata_dict.get("origin-run-id")
    return None if origin in (None, "", "None") else str(origin)


def _plan_in_run(model: FlowModel, run: Any, target: Target) -> SpinPlan | None:
    """Parents in ``run``; a run whose recorded data is missing is reported, not crashed on."""
    try:
        plan = _plan_in_run_unchecked(model, run, target)
        return None if plan is None else dataclasses.replace(
            plan, resumed_from=_resumed_from(plan), run_tags=tuple(sorted(run.user_tags)))
    except DevdError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the Client or a datastore raises: one line, the run
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DevdError(
            f"parent task data of '{target.step}' in run {model.flow_name}/{run.id} is gone "
            f"or unreadable ({type(exc).__name__}: {detail}); run the flow again with "
            f"`devd run {model.path}`"
        ) from None


def _plan_in_run_unchecked(model: FlowModel, run: Any, target: Target) -> SpinPlan | None:
    from metaflow import Task
    from metaflow.exception import MetaflowException

    if target.task_id is not None:
        pathspec = f"{model.flow_name}/{run.id}/{target.step}/{target.task_id}"
        try:
            task = Task(pathspec, _namespace_check=False)
        except MetaflowException:  # not found, or not a pathspec
            raise DevdError(
                f"no task {pathspec}; list the step's tasks with Metaflow's Client or spin "
                f"'{run.id}/{target.step}'"
            ) from None
        if target.step != model.start_step and not _written(task):
            # Metaflow links a task to its parents through what it stored (the start
            # step's parent, the run's parameters, needs nothing of it).
            raise DevdError(
                f"task {pathspec} stored nothing (it is still running, or died before it "
                f"could); spin it once it ended, or spin '{run.id}/{target.step}'"
            )
        return dataclasses.replace(_plan_from_task(model, task),
                                   attempt=int(task.current_attempt))
    # A task still running stored nothing yet; its parents, finished, are found below.
    recorded = next((t for t in _tasks_of(run, target.step) if _written(t)), None)
    if recorded is not None:
        try:
            return _plan_from_task(model, recorded)
        except DevdError:
            if target.run_id is not None:
                raise
            return None
    return _plan_from_parent_steps(model, run, target.step)


def split_target(model: FlowModel, plan: SpinPlan, split: int) -> Target:
    """The recorded task of the foreach body ``plan.step`` that took split ``split`` in the
    plan's run, as a target (its parents, its input, its recorded values to diff)."""
    from metaflow import Step

    if plan.split_index is None:
        raise DevdError(f"'{plan.step}' is not a foreach body: it has no splits to pick; "
                        "spin it without a split")
    tasks = list(Step(f"{model.flow_name}/{plan.origin_run_id}/{plan.step}",
                      _namespace_check=False))
    for task in tasks:
        if task.index == split:
            return Target(plan.step, plan.origin_run_id, task.id)
    raise DevdError(f"no split {split} of '{plan.step}' in run {plan.origin_run_id}: it has "
                    f"{len(tasks)} (0-{len(tasks) - 1})")


def split_of(model: FlowModel, plan: SpinPlan, parent_values: Any) -> tuple[dict[str, int],
                                                                              str] | None:
    """A foreach body's split: ``{index, count}`` and its notice, ``split 2 of 6 · input 4``
    (from the foreach parent's values, warm: nothing is loaded for it)."""
    if plan.split_index is None or not plan.parents:
        return None
    from ..common.summary import short_repr

    parent = model.steps.get(model.steps[plan.step].in_funcs[0])
    count = parent_values.get("_foreach_num_splits") if parent_values is not None else None
    if not isinstance(count, int):
        return None
    notice = f"split {plan.split_index} of {count}"
    param = parent.foreach_param if parent is not None else None
    values: Any = parent_values.get(param) if param else None
    try:
        notice += f" · input {short_repr(values[plan.split_index], 60)}"
    except Exception:  # noqa: BLE001 - a user's sequence type: the split's number will do
        pass
    return {"index": plan.split_index, "count": count}, notice


def resolve_plan(model: FlowModel, target: Target) -> SpinPlan:
    """Find the parents for ``target``, or say in one line why there are none.

    A remote store is checked only before the Client really reads from it (its caches may
    answer everything: devd/common/storeprobe.py), so a store that cannot be read is one
    line, not minutes of retries inside Metaflow's Client."""
    from ..common.storeprobe import failure, reading

    with reading(f"the runs of {model.flow_name}"):
        try:
            return _resolve(model, target)
        except DevdError:  # "no run got as far": because no run could be read at all?
            failed = failure()
            if failed is not None:
                raise failed from None
            raise


def _resolve(model: FlowModel, target: Target) -> SpinPlan:
    from metaflow import Flow, Run
    from metaflow.exception import MetaflowNamespaceMismatch, MetaflowNotFound

    if target.run_id is not None:
        try:
            run = Run(f"{model.flow_name}/{target.run_id}", _namespace_check=False)
        except MetaflowNotFound:
            raise DevdError(
                f"no run {model.flow_name}/{target.run_id}; run `devd run {model.path}` "
                "or pick a run id that exists"
            ) from None
        plan = _plan_in_run(model, run, target)
        if plan is None:
            raise DevdError(
                f"run {target.run_id} has no finished parent tasks for step '{target.step}'; "
                "pick another run or run the flow again"
            )
        return plan
    try:
        runs = list(Flow(model.flow_name).runs())
    except (MetaflowNotFound, MetaflowNamespaceMismatch):
        runs = []
    if not runs:
        raise DevdError(
            f"no run of {model.flow_name} yet (in namespace {_namespace()}); "
            f"run `devd run {model.path}` first"
        )
    for run in runs:  # newest first
        plan = _plan_in_run(model, run, target)
        if plan is not None:
            return plan
    raise DevdError(
        f"no run of {model.flow_name} got as far as the parents of '{target.step}'; "
        f"run `devd run {model.path}` (or fix the failing parent step) first"
    )


def _namespace() -> str:
    from metaflow import get_namespace
    from metaflow.exception import MetaflowException

    try:
        return str(get_namespace())
    except MetaflowException:  # no user name to make the default namespace from
        return "?"
