"""A prepared child's wait for its request, placed inside Metaflow's task runner.

A prepared child was made for the spin before (the same step, inputs, Configs and run:
``SpinRequest.prepared_key``), and the next spin is almost always that one again. So it
runs ``MetaflowTask.run_step`` before the request comes, as far as the step's decorators:
the metadata it registers, its output datastore, its inputs on the warm parents,
``current``, the flow's parameters. It waits there, at the gate, for the request: the
spin then pays only for the decorators' hooks, the step and what follows it.

The gate is before every decorator hook (``task_pre_step``): a ``@timeout`` arms its alarm
there, a user's decorator runs its code there, and neither may run before the spin.
What the request may change is read after the gate. Its artifact overrides are put into
the very tables the inputs read them from; only Metaflow's set-up before the gate read
Parameters and the ``_``-named bookkeeping, so a request overriding one of those is
refused, and so is one whose overrides fail to load: the spin runs in a new child, which
reports it as ever. A debugged spin is refused too, and a child prepared after one (it
has debugpy imported, for the next) waits before its set-up: the debugger attaches before
Metaflow's task runner starts, so that it traces all of it (a step's uncaught exception
stops once).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

from .overrides import add_config_values, config_override_values, read_overrides
from .request import Outdated, SpinRequest
from .state import State, mark


class RequestGate:
    """Waits for the request at the first of Metaflow's pre-step calls (see the module)."""

    def __init__(self, fixed: set[str], configs: dict[str, Any], preloading: Any,
                 on_request: Callable[[SpinRequest], None]) -> None:
        self.fixed = fixed  # the Parameters' names: read before the gate
        self.configs = configs  # the Configs given to the spin (the same: the key)
        self.preloading = preloading  # debugpy importing aside (a debugged flow's child)
        self.on_request = on_request  # what the spin does once it has its request
        self.passed = False
        self.started = 0.0

    @classmethod
    def ahead_of(cls, req: SpinRequest, flow: Any, preloading: Any,
                 on_request: Callable[[SpinRequest], None]) -> RequestGate | None:
        """A gate, the prepared request's overrides in place (the task is set up with
        them); None when the task cannot be set up ahead (they name what the set-up reads,
        or do not load): then the child waits for the request before it sets anything up.
        Called before Metaflow's set-up, which turns the Parameters into properties."""
        if req.options.debug or not gate_point_known():
            return None  # a debugged flow's child (the next spin may be debugged too)
        fixed = {var for var, _ in flow._get_parameters()}
        try:
            read_overrides(req)
        except Exception:  # noqa: BLE001 - the spin itself reports it, once asked for
            return None
        if not _fit(fixed):
            return None
        gate = cls(fixed, config_override_values(flow), preloading, on_request)
        add_config_values(gate.configs)
        return gate

    def __call__(self) -> None:
        """Block until the request comes; a child that cannot run it (its sources changed,
        or its overrides do not fit) says so and ends: the spin runs in a new child."""
        if self.passed:
            return
        from .handshake import await_request

        mark("prestep")
        asked = await_request(self._takes)  # NoRequest when the parent drops this child
        if self.preloading is not None:
            self.preloading.join()
        if isinstance(asked, Outdated):
            _answer_and_exit(asked)
            return
        self.passed = True
        mark("idle")
        self.started = time.perf_counter()
        self.on_request(asked)

    def _takes(self, req: SpinRequest) -> bool:
        """Put ``req``'s artifact overrides where the inputs read them, if they fit."""
        if req.options.debug:  # the debugger attaches before Metaflow's set-up: afresh
            return False
        plain, per_input = State.spin_artifacts, State.join_artifacts
        try:
            read_overrides(req)
            fits = _fit(self.fixed)
        except Exception:  # noqa: BLE001 - a new child reports it
            fits = False
        if fits:
            add_config_values(self.configs)
            for old, new in [(plain, State.spin_artifacts),
                             *((d, State.join_artifacts.get(k, {}))
                               for k, d in per_input.items())]:
                old.clear()
                old.update(new)
        State.spin_artifacts, State.join_artifacts = plain, per_input
        return fits


def _fit(fixed: set[str]) -> bool:
    """Whether the overrides read leave alone what Metaflow's set-up reads before the
    gate: the Parameters (``fixed``) and its own ``_``-named state (foreach, loops)."""
    names = set(State.spin_artifacts)
    for values in State.join_artifacts.values():
        names.update(values)
    return not any(name in fixed or name.startswith("_") for name in names)


def _answer_and_exit(outdated: Outdated) -> None:
    """Say the child cannot run the spin and end now: the task half set up is thrown away,
    so Metaflow's own clean-up (persisting it, the decorators' last hooks) is not run."""
    from ..common.childside import answer_and_exit

    if State.scratch:
        shutil.rmtree(State.scratch, ignore_errors=True)
    answer_and_exit(outdated)


@functools.cache
def gate_point_known() -> bool:
    """Whether this Metaflow's ``run_step`` updates the system context with the task's
    datastore and inputs before the decorators' pre-step hooks (2.19 does): where the gate
    is hooked. A release that does not is run as before, the request awaited first.
    Reading the source takes ~20 ms: the warm process asks once, before its first prepared
    child, and every child it forks inherits the answer."""
    import inspect

    from metaflow.task import MetaflowTask

    try:
        source = inspect.getsource(MetaflowTask.run_step)
    except (OSError, TypeError):
        return False
    update = source.find("system_context._update(")
    hooks = source.find("task_pre_step")
    return 0 <= update < hooks and "task_datastore=" in source[update:hooks]


@contextlib.contextmanager
def gate_at_pre_step(gate: RequestGate) -> Iterator[None]:
    """Call ``gate`` inside ``run_step`` right before the decorators' pre-step hooks.

    Metaflow updates its system context with the task's datastore and inputs just before
    those hooks (metaflow/task.py, checked by ``gate_point_known``); the gate is hooked
    there, adding no frame to the step's stack (a debugger's "user code" would see one).
    """
    from metaflow.system_context import system_context

    real = system_context._update

    def update(**values: Any) -> None:
        if "task_datastore" in values and "inputs" in values:
            gate()
        real(**values)

    system_context._update = update  # type: ignore[method-assign]
    try:
        yield
    finally:
        system_context._update = real  # type: ignore[method-assign]
