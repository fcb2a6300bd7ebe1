"""A flow kept warm: its model, its parents' artifacts, and spins run in forked children."""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .blobcache import relay_progress
from .child.request import ChildResult, SpinRequest, Unpicklable, client_value
from .child.run import run_spin
from .errors import DevdError
from .flowmodel import FlowModel, load_flow_model
from .forking import ChildProcess, OutputCallback, fork_available
from .loader import user_modules
from .options import SpinOptions
from .parents import SpinPlan, Target, parse_target, resolve_plan
from .preload import preload
from .result import Artifacts, SpinError, SpinResult
from .warmstore import TaskRef, WarmFlowDataStore, WarmStore, WarmTask

# How long after a spin its successor's child is forked (see _prepare_next).
PREPARE_DELAY_S = float(os.environ.get("DEVD_PREPARE_DELAY_MS", "5")) / 1000


class Session:
    """Keeps one flow's parents warm across spins (the engine behind API, CLI and daemon).

    Metaflow finds runs relative to the working directory (``.metaflow``), as
    ``python flow.py spin`` does; a Session uses the directory it was created in (or
    ``cwd``, which must then be this process's working directory for Metaflow's Client).
    """

    def __init__(self, flow_file: str | os.PathLike[str], *, store: WarmStore | None = None,
                 budget_bytes: int | None = None, cwd: str | None = None,
                 warm_after_spin: bool = True, prepare: bool | None = None) -> None:
        self.flow_file = os.path.abspath(os.fspath(flow_file))
        self.cwd = os.path.abspath(cwd) if cwd else os.getcwd()
        self._owns_store = store is None
        self.store = store if store is not None else WarmStore(budget_bytes)
        self._model: FlowModel | None = None
        self._model_key: tuple[int, int] | None = None
        self._plans: dict[str, tuple[Any, SpinPlan]] = {}
        self._running: ChildProcess | None = None
        self._lock = threading.RLock()
        self._warming: list[threading.Thread] = []
        self.warm_after_spin = warm_after_spin
        # A child forked ahead of time, flow imported and Metaflow set up, waiting for the
        # next spin of the step last spun (see docs/engine.md, "Prepared children").
        self.prepare = prepare if prepare is not None else \
            os.environ.get("DEVD_PREPARE", "1") not in ("0", "false")
        self._prepared: _Prepared | None = None
        self._prepared_lock = threading.Lock()
        self._closed = False
        self.store.on_drop.append(self._dropped)
        require_user()
        preload()
        bind_metaflow_root()

    # -- context manager -------------------------------------------------------
    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop a running spin and forget the warm parents (unless the store is shared)."""
        self._closed = True
        self.cancel()
        self._drop_prepared()
        if self._dropped in self.store.on_drop:
            self.store.on_drop.remove(self._dropped)
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

    def plan(self, target: str | Target) -> SpinPlan:
        """Which recorded tasks a spin of ``target`` takes its parents from."""
        model = self.model
        if not isinstance(target, Target):
            target = parse_target(model, target)
        key = f"{target.run_id}/{target.step}/{target.task_id}"
        fingerprint = None if target.task_id else _runs_fingerprint(model.flow_name)
        cached = self._plans.get(key)
        if cached is not None and (target.task_id or
                                   (fingerprint is not None and cached[0] == fingerprint)):
            return cached[1]
        plan = resolve_plan(model, target)
        self._plans[key] = (fingerprint, plan)
        return plan

    def forget_plans(self) -> None:
        """Look for parents again on the next spin (after a new run, say)."""
        self._plans.clear()

    # -- spinning -----------------------------------------------------------------
    def spin(
        self,
        options: SpinOptions | str,
        *,
        on_output: OutputCallback | None = None,
        on_card: Callable[[dict[str, Any]], None] | None = None,
        on_started: Callable[[ChildProcess], None] | None = None,
        on_debug_ready: Callable[[dict[str, Any]], None] | None = None,
        want_values: bool = True,
        want_private: bool = False,
        diff: bool = False,
        **option_keywords: Any,
    ) -> SpinResult:
        """Re-run one step on its warm parents in a forked child; see ``devd.spin``.

        ``options``: a ``SpinOptions``, or a target whose options are the keywords
        (``spin("train", persist=True)``: any field of ``SpinOptions``).
        """
        options = SpinOptions.of(options, **option_keywords)
        if options.from_spin:
            raise DevdError("a spin chained on earlier spins (from_spin) needs the daemon, "
                            "which keeps them: `devd daemon start`, then spin with --from-spin")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        with self._lock:  # the model, plan and warm parents are shared between threads
            model = self.model
            timings["model"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            plan = self.plan(parse_target(model, options.target))
            timings["plan"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            warm_tasks = self.store.get_many(plan.parents)
            timings["load"] = time.perf_counter() - t2
        return self.spin_on(plan, warm_tasks, options, on_output=on_output, on_card=on_card,
                            on_started=on_started, on_debug_ready=on_debug_ready,
                            want_values=want_values, want_private=want_private, diff=diff,
                            timings=timings, started=t0)

    def spin_on(
        self,
        plan: SpinPlan,
        warm_tasks: list[WarmTask],
        options: SpinOptions,
        *,
        on_output: OutputCallback | None = None,
        on_card: Callable[[dict[str, Any]], None] | None = None,
        on_started: Callable[[ChildProcess], None] | None = None,
        on_debug_ready: Callable[[dict[str, Any]], None] | None = None,
        want_values: bool = True,
        want_private: bool = False,
        diff: bool = False,
        timings: dict[str, float] | None = None,
        started: float | None = None,
    ) -> SpinResult:
        """Run ``plan.step`` on the given warm parent tasks (recorded, or earlier spins),
        with ``options`` (their target is already resolved into ``plan``).

        ``options.debug``: the child waits for a DAP client on a loopback port
        (``on_debug_ready`` gets ``{host, port}``; without it, the port is printed on
        stderr) before running the step. ``options.pdb``: the step runs in this very
        process, on its terminal, with post-mortem pdb (devd/debugging.py).
        """
        timings = timings if timings is not None else {}
        t0 = started if started is not None else time.perf_counter()
        model = self.model
        config_args, config_values = self._config_args(model, warm_tasks, options.config,
                                                       options.config_value)
        request = SpinRequest(
            flow_file=self.flow_file,
            cwd=self.cwd,
            step=plan.step,
            origin_run_id=plan.origin_run_id,
            input_paths=[p.input_path for p in plan.parents],
            split_index=plan.split_index,
            options=options,
            config_args=config_args,
            config_values=config_values,
            want_values=want_values,
            parent_refs=list(plan.parents),
            want_private=want_private,
            want_diff=diff,
            data_files=model.config_files(self.cwd),
            retry_count=plan.attempt,
            resumed_from=plan.resumed_from,
            run_tags=list(plan.run_tags),
        )
        if options.debug and not fork_available():
            raise DevdError("debugging a spin needs fork (not available here, or "
                            "DEVD_NO_FORK=1): use --pdb to debug in the terminal instead")
        t3 = time.perf_counter()

        def events(kind: str, payload: Any) -> None:
            if kind == "card" and on_card is not None:
                on_card(payload)
            elif kind == "debugReady":
                (on_debug_ready or _say_debug_ready)(payload)
            elif kind == "progress":  # the child downloading a big parent (devd/blobcache.py)
                relay_progress(payload)

        try:
            outcome = None if options.debug or options.pdb else \
                self._run_prepared(request, warm_tasks, on_output, events, on_started)
            if options.pdb:
                outcome = _run_here(request, WarmFlowDataStore(model.flow_name, warm_tasks),
                                    warm_tasks)
            elif outcome is None:
                if fork_available():
                    warm: Any = WarmFlowDataStore(model.flow_name, warm_tasks)
                    args: tuple[Any, ...] = (request, warm, warm_tasks)
                else:
                    args = (request, None, [])
                user_modules()  # known here, a child only classifies modules new to it
                child = ChildProcess(run_spin, args, on_output=on_output, on_event=events)
                self._running = child
                if on_started is not None:
                    on_started(child)
                outcome = child.wait()
        finally:
            self._running = None
        timings["child"] = time.perf_counter() - t3
        try:
            return self._result(model, plan, warm_tasks, outcome, options.persist, timings,
                                time.perf_counter() - t0)
        finally:
            if self.prepare and fork_available() and not options.persist and not options.pdb:
                # after the parents this spin read are warm: the child must inherit them
                # (after a debug spin, a child for an ordinary spin of the step)
                threading.Thread(target=self._prepare_next, name="devd-prepare", daemon=True,
                                 args=(model.flow_name, dataclasses.replace(
                                     request, options=options.changed(debug=False)),
                                       warm_tasks, list(self._warming))).start()

    # -- prepared children --------------------------------------------------------
    def _prepare_next(self, flow_name: str, request: SpinRequest,
                      warm_tasks: list[WarmTask], warming: list[threading.Thread]) -> None:
        """Fork the child for the next spin of this step now, off the spin's clock."""
        for thread in warming:
            thread.join()
        # A fork holds the interpreter for milliseconds: let the spin's result go out first.
        time.sleep(PREPARE_DELAY_S)
        if self._closed:
            return
        args = (request, WarmFlowDataStore(flow_name, warm_tasks), warm_tasks, True)
        user_modules()
        state = _process_state()  # what the child inherits; a later change refuses it
        try:
            child = ChildProcess(run_spin, args, armed=True)
        except OSError:  # out of processes or memory: spins still work, unprepared
            return
        fresh = _Prepared(request, _warm_signature(warm_tasks), child, state)
        with self._prepared_lock:
            old, self._prepared = self._prepared, fresh
        if old is not None:
            old.child.discard()
        if self._closed:
            self._drop_prepared()
        else:
            threading.Thread(target=self._reap_if_it_dies, args=(fresh,), daemon=True,
                             name="devd-prepared-watch").start()

    def _reap_if_it_dies(self, prepared: _Prepared) -> None:
        """A prepared child killed from outside (OOM killer, ``kill``) is dropped and reaped
        at once, not left a zombie until the next spin. Waits on a pidfd: that reaps
        nothing, so the child's own wait keeps its exit status when a spin takes it."""
        import select

        try:
            pidfd = os.pidfd_open(prepared.child.pid)
        except (AttributeError, OSError):  # not Linux 5.3+, or already reaped
            return
        try:
            select.select([pidfd], [], [])
        finally:
            os.close(pidfd)
        with self._prepared_lock:
            mine = self._prepared is prepared
            if mine:
                self._prepared = None
        if mine:  # it died waiting: nobody else will reap it
            prepared.child.discard()

    def _run_prepared(self, request: SpinRequest, warm_tasks: list[WarmTask],
                      on_output: OutputCallback | None, on_event: Any,
                      on_started: Callable[[ChildProcess], None] | None) -> Any:
        """Run the spin in the prepared child, if there is one made for it and its sources
        are unchanged; its outcome, or None (then a fresh child must run it)."""
        with self._prepared_lock:
            prepared, self._prepared = self._prepared, None
        if prepared is None:
            return None
        child = prepared.child
        if prepared.key != request.prepared_key() or \
                prepared.signature != _warm_signature(warm_tasks) or \
                prepared.state != _process_state():
            child.discard()
            return None
        try:
            child.send(request)
        except OSError:  # it already ended (its flow failed to import, say)
            child.discard()
            return None
        self._running = child  # cancellable while it finishes setting up, too
        if on_started is not None:
            on_started(child)
        message = child.next_message()  # it checks its source files first
        if message is None or message[0] != "accepted":
            if child.killed:  # cancelled meanwhile: that is this spin's outcome
                return child.wait()
            child.discard()
            return None
        child.attach(on_output, on_event)
        return child.wait()

    def prepared_for(self) -> tuple[str | None, int | None]:
        """(step, pid) of the child prepared for the next spin, if there is one."""
        prepared = self._prepared
        if prepared is None:
            return None, None
        return prepared.step, prepared.child.pid

    def _drop_prepared(self) -> None:
        with self._prepared_lock:
            prepared, self._prepared = self._prepared, None
        if prepared is not None:
            prepared.child.discard()

    def _dropped(self, pathspecs: list[str]) -> None:
        """Warm tasks left the store: a prepared child holding them would keep their memory."""
        prepared = self._prepared
        if prepared is not None and any(p in prepared.pathspecs for p in pathspecs):
            self._drop_prepared()

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

    # -- helpers --------------------------------------------------------------------
    def _config_args(self, model: FlowModel, warm_tasks: list[WarmTask],
                     config: dict[str, str], config_value: dict[str, Any]
                     ) -> tuple[list[str], dict[str, Any]]:
        """Every Config's value for the child: the given ones, else the run's.

        Returns ``--config``/``--config-value`` arguments for what Metaflow must still read
        or parse (a file, a text), and the values that are parsed already (the run's
        recorded ones, objects given to the spin): those the child hands Metaflow as they
        are, the way Metaflow's runtime passes a run's Configs to its tasks (``kv.``).
        """
        known = {p.name: p for p in model.configs()}
        unknown = [n for n in list(config) + list(config_value) if n not in known]
        if unknown:
            names = ", ".join(known) or "none"
            raise DevdError(f"{model.flow_name} has no Config '{unknown[0]}'; its Configs: {names}")
        args: list[str] = []
        values: dict[str, Any] = {}
        recorded = warm_tasks[0] if warm_tasks else None
        if recorded is not None:  # a big Config is not loaded eagerly
            recorded.ensure([p.var for p in known.values()
                             if p.name not in config and p.name not in config_value])
        for name, param in known.items():
            if name in config_value:
                value = config_value[name]
                if isinstance(value, str):  # a text, as on Metaflow's command line: parsed
                    args += ["--config-value", name, value]
                else:
                    values[name] = _config_object(value)
            elif name in config:
                path = os.path.abspath(config[name])
                if not os.path.isfile(path):
                    raise DevdError(f"config file {config[name]} for '{name}' does not exist")
                args += ["--config", name, path]
            elif recorded is not None and param.var in recorded.values:
                values[name] = _config_object(recorded.values[param.var])
        return args, values

    def _result(self, model: FlowModel, plan: SpinPlan, warm_tasks: list[WarmTask],
                outcome: Any, persist: bool, timings: dict[str, float],
                total: float) -> SpinResult:
        child: ChildResult | None = outcome.value if isinstance(outcome.value, ChildResult) \
            else None
        if child is None:
            crash = (outcome.crashed or "the step process ended without a result").strip()
            message = crash.splitlines()[-1] if crash else "no result"
            error = SpinError("devd.ChildCrashed", message, self.flow_file, None, crash)
            return SpinResult(model.flow_name, plan.step, False, {}, [], error, outcome.stdout,
                              outcome.stderr, [], total, plan.parent_pathspecs,
                              plan.origin_run_id, timings=timings,
                              recorded_task=plan.recorded_task,
                              recorded_ds=(plan.parents[0].ds_type, plan.parents[0].ds_root)
                              if plan.parents else None)
        if child.error and child.error["type"] == "devd.DevdError":
            raise DevdError(child.error["message"])
        by_pathspec = {t.ref.pathspec: t for t in warm_tasks}
        for phase, seconds in child.phases.items():
            timings[f"child.{phase}"] = seconds
        loaded = {name: _unpickled(name, blob, child.notices)
                  for name, blob in child.values.items()}
        deferred: dict[str, Callable[[], Any]] = {}
        for name, (pathspec, source) in child.parent_values.items():
            task = by_pathspec[pathspec]
            if source in task.values:
                loaded[name] = task.values[source]
            else:
                deferred[name] = functools.partial(self._parent_value, task.ref, source)
        if child.lazy_loaded and self.warm_after_spin:
            self._warm_in_background(by_pathspec, child.lazy_loaded)
        values = Artifacts(loaded, deferred)
        # As the Client shows them (an IncludeFile's content); chained spins get the raw ones.
        public = Artifacts({k: client_value(k, v) for k, v in loaded.items()
                            if not k.startswith("_")},
                           {k: functools.partial(_client_value_of, k, v)
                            for k, v in deferred.items() if not k.startswith("_")})
        error = None
        if child.error:
            e = child.error
            error = SpinError(e["type"], e["message"], e["file"], e["line"], e["traceback"])
        pathspec = None
        if persist and child.run_id and child.task_id:
            pathspec = f"{model.flow_name}/{child.run_id}/{plan.step}/{child.task_id}"
        return SpinResult(
            flow=model.flow_name,
            step=plan.step,
            ok=child.ok,
            artifacts=public,
            all_values=values,
            artifact_rows=child.artifacts,
            error=error,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            next_steps=child.next_steps,
            duration_s=total,
            parents=plan.parent_pathspecs,
            origin_run_id=plan.origin_run_id,
            pathspec=pathspec,
            persisted=persist and child.persisted_root is not None,
            card_components=child.cards,
            cards=[c["html"] for c in child.card_html],
            card_info=[{"id": c["id"], "type": c["type"], "uuid": c.get("uuid")}
                       for c in child.card_html],
            recorded_task=plan.recorded_task,
            recorded_ds=(plan.parents[0].ds_type, plan.parents[0].ds_root)
            if plan.parents else None,
            artifacts_loaded_by_step=sorted(name for _, name in child.lazy_loaded),
            artifact_hashes=dict(child.hashes),
            notices=child.notices,
            timings=timings,
            _persist_root=os.path.dirname(child.persisted_root) if child.persisted_root else None,
        )


def _say_debug_ready(endpoint: dict[str, Any]) -> None:
    """Where to attach, for a debug spin whose caller gave no ``on_debug_ready``."""
    from .debugging import describe

    print(f"devd: {describe(endpoint)}", file=sys.stderr, flush=True)


def _run_here(request: SpinRequest, warm: Any, warm_tasks: list[WarmTask]) -> Any:
    """Run a spin in this process (``--pdb``: the step needs the terminal); the process's
    streams and working directory are put back afterwards."""
    from .forking import ChildOutcome

    streams, cwd = (sys.stdout, sys.stderr), os.getcwd()
    try:
        return ChildOutcome(value=run_spin(request, warm, warm_tasks))
    finally:
        sys.stdout.flush()
        sys.stdout, sys.stderr = streams
        os.chdir(cwd)


class _Prepared:
    """A prepared child and what it was made for."""

    def __init__(self, request: SpinRequest, signature: tuple[Any, ...],
                 child: ChildProcess, state: tuple[Any, ...]) -> None:
        self.key = request.prepared_key()
        self.step = request.step
        self.signature = signature
        self.child = child
        self.state = state
        self.pathspecs = {entry[0] for entry in signature}


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
    except Exception as exc:
        detail = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {detail[0] if detail else ''}"
        notices.append(f"artifact `{name}` cannot be loaded outside the spin ({reason})")
        return Unpicklable(unpickler.first or "object", name, reason)


def _client_value_of(name: str, load: Callable[[], Any]) -> Any:
    return client_value(name, load())


def _config_object(value: Any) -> Any:
    """A Config's value as Metaflow keeps it: a ``ConfigValue`` as the dict it wraps."""
    return value.to_dict() if hasattr(value, "to_dict") else value


def _process_state() -> tuple[Any, ...]:
    """What a step may see of this process besides its parents: a notebook that sets an
    environment variable or extends sys.path between spins must not get an older child."""
    return tuple(sorted(os.environ.items())), tuple(sys.path)


def _warm_signature(warm_tasks: list[WarmTask]) -> tuple[Any, ...]:
    """Which warm objects a child forked now would hold (it sees none loaded later)."""
    return tuple((t.ref.pathspec, id(t), frozenset(t.values)) for t in warm_tasks)


def preload_libraries(names: list[str]) -> None:
    """Import in the warm process the libraries the flow imports (numpy, pandas, ...), so
    that children inherit them instead of importing them on every spin."""
    import importlib

    for name in names:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:  # a library that fails here fails in the child, with a line
                pass


def bind_metaflow_root() -> None:
    """Make Metaflow look for ``.metaflow`` from the current directory again.

    Metaflow caches the local datastore root of the first directory it searched from
    for the life of the process; a Session belongs to the directory it was made in.
    """
    from metaflow.client import core
    from metaflow.plugins.datastores.local_storage import LocalStorage
    from metaflow.plugins.datastores.spin_storage import SpinStorage

    LocalStorage.datastore_root = None
    SpinStorage.datastore_root = None
    if core.current_metadata is not False and getattr(core.current_metadata, "TYPE", "") in (
        "local", "spin"
    ):
        core.current_metadata = False


def require_user() -> None:
    """Metaflow refuses to work without a non-root user name; say so before it does."""
    from metaflow.util import get_username

    if get_username() is None:
        raise DevdError(
            "Metaflow needs a user name other than root: set USER (e.g. `export USER=alice`)"
        )


def _runs_fingerprint(flow_name: str) -> tuple[Any, ...] | None:
    """Cheap change detector for the local metadata store; None means 'always look again'."""
    from metaflow.metaflow_config import DEFAULT_METADATA
    from metaflow.plugins.datastores.local_storage import LocalStorage

    if DEFAULT_METADATA != "local":
        return None
    root = LocalStorage.get_datastore_root_from_config(lambda *a, **k: None,
                                                       create_on_absent=False)
    if root is None:
        return ("none",)
    flow_dir = os.path.join(root, flow_name)
    try:
        entries = [e for e in os.scandir(flow_dir) if e.is_dir() and not e.name.startswith("_")]
    except FileNotFoundError:
        return ("none",)
    stamps = [(e.name, e.stat().st_mtime_ns) for e in entries]
    newest = max(entries, key=lambda e: e.name, default=None)
    if newest is not None:
        for sub in os.scandir(newest.path):
            if sub.is_dir():
                stamps.append((sub.name, sub.stat().st_mtime_ns))
    return tuple(sorted(stamps))
