"""A flow kept warm: its model, its parents' artifacts, and spins run in forked children."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..child.request import CardUpdate, ChildEvent, ChildResult, DebugReady, SpinRequest
from ..child.run import run_spin
from ..common import clientcache, includes
from ..common.blobcache import DownloadProgress, relay_progress
from ..common.channel import dumps_message
from ..common.errors import DevdError
from ..common.forking import ChildOutcome, ChildProcess, OutputCallback, fork_available
from ..common.loader import user_modules
from ..common.options import SpinHooks, SpinOptions
from ..common.warmstore import TaskRef, WarmFlowDataStore, WarmStore, WarmTask
from .configs import config_args
from .flowmodel import FlowModel, load_flow_model
from .metaflowenv import bind_metaflow_root, require_user, runs_fingerprint
from .outcome import build_result, client_value_of
from .parents import SpinPlan, Target, parse_target, resolve_plan, split_of, split_target
from .preload import preload, preload_libraries
from .preparedchildren import PreparedChildren
from .result import SpinResult
from .runwatch import ServiceUnreachable, bound_metaflow_retries
from .runwatch import forget as forget_newest_runs
from .stepenv import (
    StepEnvironment,
    StepEnvironments,
    environment_name,
    recorded_hints,
    top_level_args,
)
from .workers import WorkerPool, load_value

log = logging.getLogger("devd.session")


class Session:
    """Keeps one flow's parents warm across spins (the engine behind API, CLI and daemon).

    Metaflow finds runs relative to the working directory (``.metaflow``), as
    ``python flow.py spin`` does; a Session uses the directory it was created in (or
    ``cwd``, which must then be this process's working directory for Metaflow's Client).
    """

    def __init__(self, flow_file: str | os.PathLike[str], *, store: WarmStore | None = None,
                 budget_bytes: int | None = None, cwd: str | None = None,
                 warm_after_spin: bool = True, prepare: bool | None = None,
                 workers: WorkerPool | None = None, in_worker: bool = False) -> None:
        self.flow_file = os.path.abspath(os.fspath(flow_file))
        self.cwd = os.path.abspath(cwd) if cwd else os.getcwd()
        self._owns_store = store is None
        self.store = store if store is not None else WarmStore(budget_bytes)
        self._model: FlowModel | None = None
        self._model_key: tuple[int, int] | None = None
        self._plans: dict[str, tuple[Any, SpinPlan]] = {}
        self.plan_notice: str | None = None  # the last plan's caveat (a service outage)
        self._running: ChildProcess | None = None
        self._lock = threading.RLock()
        self._warming: list[threading.Thread] = []
        self.warm_after_spin = warm_after_spin
        # A child forked ahead of time, flow imported and Metaflow set up, waiting for the
        # next spin of the step last spun (see docs/engine.md, "Prepared children").
        self.prepare = prepare if prepare is not None else \
            os.environ.get("DEVD_PREPARE", "1") not in ("0", "false")
        self.prepared = PreparedChildren()
        self.debugged = False  # a spin of this flow was debugged: its next may be too
        self.store.on_drop.append(self.prepared.dropped)
        # Steps whose environment is another interpreter are spun by a warm worker there
        # (devd/core/workers.py); a worker's own sessions spin every step where they are.
        self.environments = None if in_worker else StepEnvironments()
        self.in_worker = in_worker  # its results' values go on to the daemon unread
        self._hints: dict[str, dict[str, str]] = {}  # recorded task -> recorded_hints
        self._owns_workers = workers is None
        self.workers = workers
        require_user()
        preload()
        bind_metaflow_root()
        clientcache.install()  # Metaflow's Client reads through a checked, verified cache
        bound_metaflow_retries()  # a service outage: seconds, not Metaflow's 15 s of retries
        includes.install()  # IncludeFile contents read once per process, not once per spin

    # -- context manager -------------------------------------------------------
    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop a running spin and forget the warm parents (unless the store is shared)."""
        self.prepared.close()
        self.cancel()
        if self._owns_workers and self.workers is not None:
            self.workers.close()
        if self.prepared.dropped in self.store.on_drop:
            self.store.on_drop.remove(self.prepared.dropped)
        self._plans.clear()
        if self._owns_store:
            self.wait_warm(timeout=60)
            self.store.clear()

    # -- the flow ----------------------------------------------------------------
    @property
    def model(self) -> FlowModel:
        """The flow's model, re-read when the file changes."""
        with self._lock:
            return self._current_model()

    def _current_model(self) -> FlowModel:
        try:
            st = os.stat(self.flow_file)
        except FileNotFoundError:
            raise DevdError(
                f"{self.flow_file}: no such file; pass the path of your flow's .py file"
            ) from None
        key = (st.st_mtime_ns, st.st_size)
        if self._model is None or key != self._model_key:
            self._model = load_flow_model(self.flow_file)
            self._model_key = key
            preload_libraries(self._model.library_modules)
        return self._model

    def _known_model(self) -> FlowModel | None:
        """The model, if the one read last is of the file as it is now (else None)."""
        try:
            st = os.stat(self.flow_file)
        except OSError:
            return None
        return self._model if (st.st_mtime_ns, st.st_size) == self._model_key else None

    def plan(self, target: str | Target) -> SpinPlan:
        """Which recorded tasks a spin of ``target`` takes its parents from."""
        model = self.model
        if not isinstance(target, Target):
            target = parse_target(model, target)
        key = f"{target.run_id}/{target.step}/{target.task_id}"
        cached = self._plans.get(key)
        self.plan_notice = None
        if cached is not None and target.task_id:
            return cached[1]  # a recorded task's parents never change
        try:  # service metadata: one cheap request at most (devd/core/runwatch.py)
            fingerprint = runs_fingerprint(model.flow_name, self.cwd)
        except ServiceUnreachable as exc:
            if cached is None:
                raise
            self.plan_notice = (f"service unreachable: using cached parents of run "
                                f"{cached[1].origin_run_id} (Metaflow's metadata service "
                                f"at {exc.url}: {exc.why})")
            return cached[1]
        if target.task_id:
            fingerprint = None
        if cached is not None and fingerprint is not None and cached[0] == fingerprint:
            return cached[1]
        plan = resolve_plan(model, target)
        self._plans[key] = (fingerprint, plan)
        return plan

    def forget_plans(self) -> None:
        """Look for parents again on the next spin (after a new run, say)."""
        self._plans.clear()
        forget_newest_runs()

    # -- spinning -----------------------------------------------------------------
    def spin(self, options: SpinOptions | str, hooks: SpinHooks | None = None,
             **keywords: Any) -> SpinResult:
        """Re-run one step on its warm parents in a forked child; see ``devd.spin``.

        ``options``: a ``SpinOptions``, or a target whose options are the keywords
        (``spin("train", persist=True)``: any field of ``SpinOptions``). ``hooks``: how the
        caller follows the spin; without them, the keywords may name ``SpinHooks``' fields
        too (``spin("train", on_output=print, diff=True)``).
        """
        if hooks is None:
            hooks, keywords = SpinHooks.split(keywords)
        options = SpinOptions.of(options, **keywords)
        if options.from_spin:
            raise DevdError("a spin chained on earlier spins (from_spin) needs the daemon, "
                            "which keeps them: `devd daemon start`, then spin with --from-spin")
        stepenv = self.step_environment(options)
        if stepenv is not None and not stepenv.here:
            return self._spin_in_worker(stepenv, options, hooks)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        found = self._parents(options, timings)
        assert found is not None
        model, plan, notice, warm_tasks = found
        result = self.spin_on(plan, warm_tasks, options, hooks, timings=timings, started=t0)
        if notice:
            result.notices.insert(0, notice)
        if stepenv is not None and stepenv.notice:
            result.notices.insert(0, stepenv.notice)
        split = split_of(model, plan, warm_tasks[0].values if warm_tasks else None)
        if split is not None:  # a foreach body: which split, of how many (issue 19)
            result.split, said = split
            result.notices.insert(0, said)
        return result

    def _parents(self, options: SpinOptions, timings: dict[str, float],
                 rehearsal: bool = False
                 ) -> tuple[FlowModel, SpinPlan, str | None, list[WarmTask]] | None:
        """The model, the plan, its notice and the warm parents of a spin of ``options``.
        ``rehearsal``: only what is known already (the model of the file as it is, the plan
        as the last spin left it, parents warm now), else None: nothing is asked of
        Metaflow, its metadata service or the file system beyond a stat."""
        t0 = time.perf_counter()
        with self._lock:  # the model, plan and warm parents are shared between threads
            model = self._known_model() if rehearsal else self.model
            if model is None:
                return None
            timings["model"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            target = parse_target(model, options.target)
            if rehearsal:
                known = self._plans.get(f"{target.run_id}/{target.step}/{target.task_id}")
                if known is None or options.split is not None:
                    return None
                plan = known[1]
            else:
                plan = self.plan(target)
            if options.split is not None and options.split != plan.split_index:
                plan = self.plan(split_target(model, plan, options.split))
            notice = self.plan_notice
            timings["plan"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            if rehearsal and not self.store.holds(plan.parents):
                return None
            warm_tasks = self.store.get_many(plan.parents)
            includes.prime((n, v) for t in warm_tasks for n, v in t.values.items())
            timings["load"] = time.perf_counter() - t2
        return model, plan, notice, warm_tasks

    def _request(self, model: FlowModel, plan: SpinPlan, warm_tasks: list[WarmTask],
                 options: SpinOptions, hooks: SpinHooks) -> SpinRequest:
        """What the child is sent: the plan, the options, the Configs, what to send back."""
        args, config_values = config_args(model, warm_tasks, options.config,
                                          options.config_value)
        environment = environment_name(model, plan.step, options, self._hints.get(
            plan.recorded_task or (plan.parent_pathspecs[0] if plan.parents else "")))
        if environment != "local" or options.datastore or options.metadata or \
                options.decospecs:
            args = [*top_level_args(options, environment), *args]
        return SpinRequest(
            flow_file=self.flow_file,
            cwd=self.cwd,
            step=plan.step,
            origin_run_id=plan.origin_run_id,
            input_paths=[p.input_path for p in plan.parents],
            split_index=plan.split_index,
            options=options,
            config_args=args,
            config_values=config_values,
            want_values=hooks.want_values,
            parent_refs=list(plan.parents),
            want_private=hooks.want_private,
            want_diff=hooks.diff,
            data_files=model.config_files(self.cwd),
            retry_count=plan.attempt,
            resumed_from=plan.resumed_from,
            run_tags=list(plan.run_tags),
        )

    def _rehearse(self, options: SpinOptions, hooks: SpinHooks, last: Any = None) -> None:
        """Go through what the next spin of ``options`` does before it sends its request
        and after its child answers (as ``last``, the last spin's answer, did, but for the
        values the step set), sending nothing: right after a prepared child is forked, on
        the preparing thread.

        The fork shares every page of this process with the child, copy-on-write: the next
        spin's first write to each page it touches (a refcount, a cache's dict) would copy
        that page then, ~380 of them (~3.5 us each) on the spin's way to its child. Made
        here, those copies are off its path. Nothing changes and nothing is asked: only
        the model, plan and warm parents known already are used (``_parents``), and what
        fails is left for the spin to report.
        """
        if options.from_spin:  # a chained spin plans from the last spins, not from here
            return
        try:
            SpinHooks.split({})
            options = SpinOptions.of(options)
            found = self._parents(options, {}, rehearsal=True)
            if found is None:
                return
            stepenv = self.step_environment(options)  # the plan is known: asks nothing
            if stepenv is not None and not stepenv.here:
                return
            model, plan, _, warm_tasks = found
            request = self._request(model, plan, warm_tasks, options, hooks)
            if self.prepared.would_take(request, warm_tasks):
                dumps_message(("request", request), by_value=request.carries_objects)
            if isinstance(last, ChildResult):
                _, echo = pickle.loads(dumps_message(
                    ("result", dataclasses.replace(last, values={}))))
                build_result(self.flow_file, model.flow_name, plan, warm_tasks,
                             ChildOutcome(value=echo), persist=options.persist, timings={},
                             total=0.0, parent_value=self._parent_value, warm_later=None,
                             lazy_values=self.in_worker)
        except Exception:  # the spin itself meets it, and says so
            log.debug("rehearsing the next spin failed", exc_info=True)

    def spin_on(
        self,
        plan: SpinPlan,
        warm_tasks: list[WarmTask],
        options: SpinOptions,
        hooks: SpinHooks | None = None,
        *,
        timings: dict[str, float] | None = None,
        started: float | None = None,
    ) -> SpinResult:
        """Run ``plan.step`` on the given warm parent tasks (recorded, or earlier spins),
        with ``options`` (their target is already resolved into ``plan``).

        ``options.debug``: the child waits for a DAP client on a loopback port
        (``hooks.on_debug_ready`` gets ``{host, port}``; without it, the port is printed
        on stderr) before running the step. ``options.pdb``: the step runs in this very
        process, on its terminal, with post-mortem pdb (devd/common/debugging.py).
        """
        hooks = hooks if hooks is not None else SpinHooks()
        timings = timings if timings is not None else {}
        t0 = started if started is not None else time.perf_counter()
        model = self.model
        request = self._request(model, plan, warm_tasks, options, hooks)
        if options.debug and not fork_available():
            raise DevdError("debugging a spin needs fork (not available here, or "
                            "DEVD_NO_FORK=1): use --pdb to debug in the terminal instead")
        t3 = time.perf_counter()

        def events(event: ChildEvent) -> None:
            if isinstance(event, CardUpdate):
                if hooks.on_card is not None:
                    hooks.on_card(event.entry)
            elif isinstance(event, DebugReady):
                (hooks.on_debug_ready or _say_debug_ready)(
                    {"host": event.host, "port": event.port})
            elif isinstance(event, DownloadProgress):  # the child reading a big parent
                relay_progress(event)

        def running(child: ChildProcess) -> None:
            self._running = child
            if hooks.on_started is not None:
                hooks.on_started(child)

        try:
            outcome = self._run(request, model.flow_name, warm_tasks, hooks.on_output, events,
                                running)
        finally:
            self._running = None
        if options.persist and outcome.value is None:  # killed (or crashed) mid-persist:
            from ..child.persist import spin_root, sweep  # its half-written task goes

            sweep(spin_root(self.cwd))
        timings["child"] = time.perf_counter() - t3
        try:
            return build_result(
                self.flow_file, model.flow_name, plan, warm_tasks, outcome,
                persist=options.persist, timings=timings, total=time.perf_counter() - t0,
                parent_value=self._parent_value,
                warm_later=self._warm_in_background if self.warm_after_spin else None,
                lazy_values=self.in_worker)
        finally:
            if self.prepare and fork_available() and not options.persist and not options.pdb:
                # after the parents this spin read are warm: the child must inherit them
                # (once a spin of the flow was debugged, one that imports debugpy while it
                # waits: the next spin may be debugged too; it serves an ordinary one too)
                self.debugged = self.debugged or options.debug
                self.prepared.prepare(
                    model.flow_name,
                    dataclasses.replace(request, options=options.changed(debug=self.debugged)),
                    warm_tasks, list(self._warming),
                    then=functools.partial(self._rehearse, options, hooks, outcome.value))

    def step_environment(self, options: SpinOptions) -> StepEnvironment | None:
        """Where the step of ``options`` runs (None: in a worker, always right here)."""
        if self.environments is None:
            return None
        model = self.model
        step = parse_target(model, options.target).step
        return self.environments.resolve(model, step, options, self.cwd,
                                         self._recorded_hints(model, options))

    def _recorded_hints(self, model: FlowModel, options: SpinOptions) -> dict[str, str] | None:
        """Where the parents' run ran its tasks (once per plan), when the environment is
        not given; None when there is no plan yet (the spin says why later)."""
        if options.environment or options.from_spin:
            return None
        try:
            with self._lock:
                target = parse_target(model, options.target)
                # a plan this session holds: no second newest-run question to the metadata
                # service in this spin (the spin's own plan() asks; issue 21: one per spin)
                known = self._plans.get(f"{target.run_id}/{target.step}/{target.task_id}")
                plan = known[1] if known is not None else self.plan(target)
        except ServiceUnreachable:  # one line now, not a second question in the spin's plan
            raise
        except Exception:  # noqa: BLE001 - the spin plans again and says why, in one line
            return None
        key = plan.recorded_task or (plan.parent_pathspecs[0] if plan.parents else "")
        if key not in self._hints:
            self._hints[key] = recorded_hints(
                [p for p in (plan.recorded_task, *plan.parent_pathspecs)
                 if p and "/_parameters/" not in p])
        return self._hints[key]

    def _spin_in_worker(self, stepenv: StepEnvironment, options: SpinOptions,
                        hooks: SpinHooks) -> SpinResult:
        """The spin, by the warm worker of the step's interpreter; its values are read
        here when first asked for (one this interpreter cannot read stands in)."""
        from ..common.report import SpinError
        from .result import Artifacts

        if options.pdb:
            raise DevdError(f"--pdb runs the step in this terminal's interpreter, but "
                            f"'{parse_target(self.model, options.target).step}' runs in "
                            f"{stepenv.python} ({stepenv.name}): debug it with --debug")
        if self.workers is None:
            self.workers = WorkerPool(self.cwd, self.store.budget_bytes)
        started = time.perf_counter()
        step = parse_target(self.model, options.target).step
        worker = self.workers.worker(stepenv)
        # the worker's session spins where it is, with the environment named outright
        answer = worker.spin(self.flow_file, options.changed(environment=stepenv.environment),
                             dataclasses.replace(hooks, on_debug_ready=hooks.on_debug_ready
                                                 or _say_debug_ready))
        if answer[0] == "refused":
            raise DevdError(answer[1])
        if answer[0] == "result":
            result: SpinResult = answer[1]
            values: dict[str, bytes] = answer[3]  # as the step's child pickled them
            public = {row.name for row in result.artifact_rows}
            loaders = {n: _loader(n, b) for n, b in values.items()}
            for name, (parent, source) in result.passed_down.items():
                if name not in loaders:  # the parent's own value, from this process's store
                    loaders[name] = functools.partial(self._passed_down, options.target,
                                                      parent, source)
            result.all_values = Artifacts({}, dict(loaders))
            # as the Client shows them (an IncludeFile's content), as build_result does
            result.artifacts = Artifacts({}, {n: functools.partial(client_value_of, n, load)
                                              for n, load in loaders.items() if n in public})
        else:  # the worker failed, or died, mid-spin: as a crashed child is reported
            model = self.model
            text = str(answer[1]).strip()
            line = text.splitlines()[-1] if text else "the worker ended without a result"
            kind = "devd.WorkerDied" if answer[0] == "died" else "devd.ChildCrashed"
            result = SpinResult(model.flow_name, step, False, {}, [],
                                SpinError(kind, line, self.flow_file, None, text), "", "", [],
                                time.perf_counter() - started, [], "")
        if stepenv.notice:
            result.notices.insert(0, stepenv.notice)
        result.environment = {**stepenv.describe(), "worker": worker.pid}
        # the whole round trip as this process saw it (the rest of `timings` is the worker's)
        result.timings["worker"] = time.perf_counter() - started
        return result

    def _run(self, request: SpinRequest, flow_name: str, warm_tasks: list[WarmTask],
             on_output: OutputCallback | None, on_event: Callable[[ChildEvent], None],
             on_started: Callable[[ChildProcess], None]) -> ChildOutcome:
        """The spin's outcome: run in this process (pdb), in the child prepared for it, or
        in a child forked now."""
        if request.options.pdb:
            return _run_here(request, WarmFlowDataStore(flow_name, warm_tasks), warm_tasks)
        outcome = self.prepared.run(request, warm_tasks, on_output, on_event, on_started)
        if outcome is not None:
            return outcome
        # spawned: it loads the parents itself, what is warm here included
        args: tuple[Any, ...] = (dataclasses.replace(
            request, warm_names={t.ref.pathspec: sorted(t.values) for t in warm_tasks}), None, [])
        if fork_available():
            args = (request, WarmFlowDataStore(flow_name, warm_tasks), warm_tasks)
        user_modules()  # known here, a child only classifies modules new to it
        child = ChildProcess(run_spin, args, on_output=on_output, on_event=on_event)
        on_started(child)
        return child.wait()

    def _passed_down(self, target: str, parent: str, name: str) -> Any:
        """A value a worker's spin passed down from ``parent`` unchanged, read from this
        process's warm store (the parents are the same recorded tasks)."""
        for ref in self.plan(target).parents:
            if ref.pathspec == parent:
                return self._parent_value(ref, name)
        raise KeyError(name)

    def _parent_value(self, ref: TaskRef, name: str) -> Any:
        return self.store.ensure(ref, [name]).values[name]

    def _warm_in_background(self, tasks: dict[str, WarmTask],
                            loaded: list[tuple[str, str]]) -> None:
        """Load what the child had to read itself, so that the next spin finds it warm."""
        wanted: dict[str, list[str]] = {}
        for pathspec, name in loaded:
            wanted.setdefault(pathspec, []).append(name)

        def work() -> None:
            for pathspec, names in wanted.items():
                try:
                    self.store.ensure(tasks[pathspec].ref, names)
                except DevdError:
                    pass

        thread = threading.Thread(target=work, name="devd-warm", daemon=True)
        thread.start()
        self._warming.append(thread)

    def wait_warm(self, timeout: float | None = None) -> None:
        """Wait for background loads started by earlier spins (benchmarks, tests)."""
        for thread in list(self._warming):
            thread.join(timeout)
        self._warming = [t for t in self._warming if t.is_alive()]

    def cancel(self) -> None:
        """Kill the spin in progress, if any."""
        if self._running is not None:
            self._running.kill()


def _loader(name: str, blob: bytes) -> Callable[[], Any]:
    return lambda: load_value(name, blob)


def _say_debug_ready(endpoint: dict[str, Any]) -> None:
    """Where to attach, for a debug spin whose caller gave no ``on_debug_ready``."""
    from ..common.debugging import describe

    print(f"devd: {describe(endpoint)}", file=sys.stderr, flush=True)


def _run_here(request: SpinRequest, warm: WarmFlowDataStore,
              warm_tasks: list[WarmTask]) -> ChildOutcome:
    """Run a spin in this process (``--pdb``: the step needs the terminal); the process's
    streams and working directory are put back afterwards."""
    streams, cwd = (sys.stdout, sys.stderr), os.getcwd()
    try:
        return ChildOutcome(value=run_spin(request, warm, warm_tasks))
    finally:
        sys.stdout.flush()
        sys.stdout, sys.stderr = streams
        os.chdir(cwd)
