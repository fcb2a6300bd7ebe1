"""What runs inside the forked child of a spin: Metaflow's own task runner on warm parents.

The child imports the flow fresh, lets Metaflow's CLI resolve configs and initialise
decorators exactly as ``python flow.py spin`` would (through a hidden ``devd-spin-step``
subcommand), then runs ``MetaflowTask.run_step`` with the warm, in-memory parents.
Everything it reports goes back to the parent as plain data.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import tempfile
import time
import traceback
from types import FunctionType, MethodType
from typing import Any

from ..summary import describe
from ..warmstore import LAZY_LOADED, WarmTaskDataStore
from .request import (
    ChildResult,
    Outdated,
    SpinRequest,
    Unpicklable,
    client_value,
    spin_kept_decorators,
)


class _State:
    request: SpinRequest
    marks: list[tuple[str, float]] = []
    flow: Any = None
    run_id: str | None = None
    task_id: str | None = None
    created_at: Any = None
    spin_artifacts: dict[str, Any] = {}
    join_artifacts: dict[str, dict[str, Any]] = {}
    warm: Any  # WarmFlowDataStore
    warm_tasks: list[Any]
    result: ChildResult | Outdated | None = None
    cards: list[dict[str, Any]] = []
    prepared: bool = False  # wait for the request after set-up (see Session's prepared child)
    stamps: list[tuple[str, int, int]] = []  # (path, mtime_ns, size) of what the child read


def _is_artifact(flow: Any, var: str, val: Any) -> bool:
    """The test Metaflow's TaskDataStore.persist applies to ``dir(flow)``."""
    from metaflow.parameters import Parameter

    if var.startswith("__") or var in flow._EPHEMERAL:
        return False
    cls_attr = getattr(flow.__class__, var, None)
    if isinstance(cls_attr, property):
        return False
    return not isinstance(val, MethodType | FunctionType | Parameter)


def error_info(exc: BaseException, flow_file: str) -> dict[str, Any]:
    """Type, message, the innermost frame in the flow file, and the traceback."""
    from metaflow.exception import MetaflowException

    frames = traceback.extract_tb(exc.__traceback__)
    flow_path = os.path.realpath(flow_file)
    in_flow = [f for f in frames if os.path.realpath(f.filename) == flow_path]
    frame = in_flow[-1] if in_flow else (frames[-1] if frames else None)
    kind = type(exc)
    qual = kind.__qualname__
    if kind.__module__ != "builtins":
        qual = f"{kind.__module__}.{qual}"
    if isinstance(exc, MetaflowException):
        message = exc.message or str(exc)
        line = getattr(exc, "line_no", None)
    else:
        message = str(exc)
        line = None
    return {
        "type": qual,
        "message": message,
        "file": frame.filename if frame else flow_file,
        "line": (frame.lineno if frame else line),
        "traceback": "".join(traceback.format_exception(kind, exc, exc.__traceback__)),
    }


def _capture_output_datastore(flow_datastore: Any, sink: dict[str, Any]) -> None:
    """Wrap the output TaskDataStore's ``persist`` to read the artifacts as it stores them."""
    original_get = flow_datastore.get_task_datastore

    def get_task_datastore(*args: Any, **kwargs: Any) -> Any:
        ds = original_get(*args, **kwargs)
        if kwargs.get("mode") == "w":
            real_persist = ds.persist

            def persist(flow: Any) -> None:
                _collect_artifacts(flow, sink)
                real_persist(flow)

            ds.persist = persist
            _read_merged_from_origin(ds)
            sink["output"] = ds
        return ds

    flow_datastore.get_task_datastore = get_task_datastore
    sink["flow_datastore"] = flow_datastore


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


def _collect_artifacts(flow: Any, sink: dict[str, Any]) -> None:
    """Every artifact the task will hold: set in the step, or passed down from a parent."""
    for name, value in _State.spin_artifacts.items():
        # An override is the parent state this spin ran with: pass it on as such.
        if name not in flow.__dict__ and not name.startswith("_"):
            try:
                setattr(flow, name, value)
            except Exception:
                pass
    produced: dict[str, Any] = {}
    for var in dir(flow):
        try:
            val = getattr(flow, var)
        except Exception:
            continue
        if _is_artifact(flow, var, val):
            produced[var] = val
    passdown = dict(flow._datastore._objects) if flow._datastore is not None else {}
    sink["produced"] = produced
    sink["passdown"] = passdown
    sink["next_steps"] = list(flow._transition[0]) if flow._transition else []


_NOT_LOADED = object()


def _sha_index() -> dict[str, tuple[str, str, Any, Any]]:
    """Content hash -> (parent pathspec, name, value or _NOT_LOADED, the parent task)."""
    index = {}
    for task in _State.warm_tasks:
        for name, sha in task.datastore._objects.items():
            index[sha] = (task.ref.pathspec, name, task.values.get(name, _NOT_LOADED), task)
    return index


def _unchanged_parent_objects(produced: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Artifacts that are a parent's own big array or buffer, read but not changed.

    Reading ``self.x`` caches it on the flow, so Metaflow sees it as set by the step; the
    same object, with no page written since the fork (devd/pagecheck.py) or else the same
    crc32, is the parent's value, and needs no copy back.
    """
    from ..pagecheck import untouched_since_fork
    from ..warmstore import fingerprint

    owners = {}
    for task in _State.warm_tasks:
        for name, crc in task.fingerprints.items():
            if name in task.values:
                owners[id(task.values[name])] = (task.ref.pathspec, name, crc)
    found = {}
    for name, value in produced.items():
        owner = owners.get(id(value))
        if owner is not None and (untouched_since_fork(value) or fingerprint(value) == owner[2]):
            found[name] = (owner[0], owner[1])
    return found


def _describe_unloaded(name: str, task: Any, source: str) -> dict[str, Any]:
    """A row for a passed-down artifact nobody has read yet: from its recorded metadata."""
    info = task.datastore._info.get(source, {})
    kind = str(info.get("type", "object"))
    if kind.startswith("<class '") and kind.endswith("'>"):
        kind = kind[len("<class '"):-2]
    if kind.startswith("numpy."):
        kind = "numpy." + kind.rsplit(".", 1)[-1]
    size = int(info.get("size", 0) or 0)
    return {"name": name, "type": kind, "summary": "not loaded (the step did not read it)",
            "sizeBytes": size}


def _quiet_skipped_decorators() -> None:
    """No "[Warning] Ignoring Step decorator" lines in the step's output.

    Metaflow prints one for every decorator of *every* step it does not run in a spin,
    twice; the spun step's own skipped decorators are in the result's notices instead.
    """
    from metaflow import decorators

    real = decorators._should_skip_decorator_for_spin
    if getattr(real, "_devd_quiet", False):
        return

    def should_skip(deco: Any, is_spin: Any, skip_decorators: Any, logger: Any,
                    decorator_type: str = "decorator") -> bool:
        return real(deco, is_spin, skip_decorators, lambda *a, **k: None, decorator_type)

    should_skip._devd_quiet = True  # type: ignore[attr-defined]
    decorators._should_skip_decorator_for_spin = should_skip


def _install_card_capture() -> None:
    """Keep card components in memory instead of Metaflow's ``card create`` subprocess."""
    from metaflow.plugins.cards.card_creator import CardCreator

    from ..forking import emit

    def create(self: Any, card_uuid: Any = None, user_set_card_id: Any = None,
               runtime_card: bool = False, decorator_attributes: Any = None,
               card_options: Any = None, logger: Any = None, mode: str = "render",
               final: bool = False, sync: bool = False) -> None:
        from metaflow import current

        if mode != "render" and not runtime_card:
            return
        components = current.card._serialize_components(card_uuid) \
            if mode in ("render", "render_runtime") else []
        try:
            data = current.card._get_latest_data(card_uuid, final=final, mode=mode)
        except Exception:
            data = None
        attrs = decorator_attributes or {}
        entry = {
            "uuid": card_uuid,
            "id": user_set_card_id,
            "type": attrs.get("type", "default"),
            "options": card_options or {},
            "attributes": {k: v for k, v in attrs.items() if _jsonable(v)},
            "components": components,
            "data": data,
            "mode": mode,
            "final": final,
        }
        if final and mode == "render":
            _State.cards = [c for c in _State.cards if c["uuid"] != card_uuid] + [entry]
        elif not final:
            if mode == "render_runtime":
                entry["html"] = _render_runtime(entry)
            emit("card", entry)

    CardCreator.create = create


class _Tee:
    """Keeps what the step prints (for the card's stdout/stderr) and passes it on."""

    def __init__(self, stream: Any) -> None:
        from ..forking import max_output_bytes

        self._stream = stream
        self.text: list[str] = []
        self._room = max_output_bytes()  # as the parent keeps: the card shows no more

    def write(self, text: str) -> int:
        if self._room > 0:
            kept = text[:self._room]
            self.text.append(kept)
            self._room -= len(kept)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _task_view(values: dict[str, Any], finished: bool) -> Any:
    """The spun task as card classes see it (they expect a Client Task)."""
    import datetime

    from metaflow.util import get_username

    from ..cards import TaskView

    req = _State.request
    flow = _State.flow
    params = {}
    for var, _param in flow._get_parameters():
        if var in values:
            params[var] = values[var]
    run_id = _State.run_id or "devd-spin"
    pathspec = f"{flow.name}/{run_id}/{req.step}/{_State.task_id or 0}"
    out = sys.stdout.text if isinstance(sys.stdout, _Tee) else []
    err = sys.stderr.text if isinstance(sys.stderr, _Tee) else []
    return TaskView(pathspec, values, stdout="".join(out), stderr="".join(err),
                    created_at=_State.created_at, finished_at=datetime.datetime.now(),
                    finished=finished, tags=[f"user:{get_username()}", "devd:spin"],
                    parameters=params)


def _render_runtime(entry: dict[str, Any]) -> str | None:
    from ..cards import render_card

    try:
        flow = _State.flow
        values = {k: v for k, v in vars(flow).items() if not k.startswith("_")}
        return render_card(entry, _task_view(values, finished=False), flow,
                           mode="render_runtime")
    except Exception:
        return None


def _render_final_cards(values: dict[str, Any]) -> list[dict[str, Any]]:
    from ..cards import render_card

    rendered = []
    for entry in _State.cards:
        html = render_card(entry, _task_view(values, finished=True), _State.flow)
        rendered.append({"id": entry.get("id"), "type": entry.get("type"),
                         "uuid": entry.get("uuid"), "html": html})
    return rendered


DIFF_LIMIT_BYTES = 64 << 20


def _content_hash(value: Any) -> str | None:
    """Metaflow's content address of a value (sha1 of its protocol-4 pickle), if cheap."""
    import hashlib

    from ..summary import size_bytes

    size = size_bytes(value)
    if size is not None and size > DIFF_LIMIT_BYTES:
        return None
    try:
        return hashlib.sha1(pickle.dumps(value, protocol=4)).hexdigest()
    except Exception:
        return None


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def _pickle_problem(value: Any) -> str | None:
    """Why Metaflow could not store ``value`` (it pickles artifacts), or None if it can."""
    try:
        pickle.Pickler(_Discard(), protocol=4).dump(value)  # type: ignore[arg-type]
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except Exception:
        return False


def _fresh_metaflow_cli() -> Any:
    """Metaflow's CLI module, executed afresh inside the current flow context.

    ``metaflow.cli`` adds the flow's ``--config`` and decorator options to its ``start``
    command when it is imported; the warm parent imported it with no flow, so each child
    executes it again for its own flow (its dependencies stay warm).
    """
    import importlib

    sys.modules.pop("metaflow.cli", None)
    return importlib.import_module("metaflow.cli")


def _config_value_args(flow_cls: Any, values: dict[str, Any]) -> list[str]:
    """``--config-value NAME kv.NAME`` for Configs whose value is already parsed.

    Metaflow's runtime hands a task its run's Config values this way: the ``kv.`` mark
    makes its CLI take the value as it is from ``ConfigInput``'s table instead of putting
    a text through the Config's parser (TOML, YAML, a function of the flow...). A run's
    recorded values and values given to a spin as objects go this way.
    """
    if not values:
        return []
    from metaflow.user_configs.config_options import ConfigInput

    plain = {param.name: bool(param.kwargs.get("plain", False))
             for _, param in flow_cls._get_parameters()
             if getattr(param, "IS_CONFIG_PARAMETER", False)}
    table: dict[str, tuple[Any, bool]] = {}
    args: list[str] = []
    for name, value in values.items():
        if name in plain:  # a Config since removed from the flow is not asked for
            table[name] = (value, plain[name])
            args += ["--config-value", name, ConfigInput.make_key_name(name)]
    ConfigInput.loaded_configs = table
    return args


def _report_parser_failures() -> None:
    """A Config parser that refuses a value given to the spin: one line naming it."""
    from metaflow._vendor import click
    from metaflow.user_configs.config_options import ConfigInput

    original = ConfigInput._call_parser

    def call_parser(parser: Any, val: str, is_plain: bool) -> Any:
        try:
            return original(parser, val, is_plain)
        except Exception as exc:
            name = parser if isinstance(parser, str) else \
                getattr(parser, "__qualname__", repr(parser))
            detail = (str(exc).strip().splitlines() or [""])[0]
            raise click.UsageError(f"the Config parser {name} refused the value given: "
                                   f"{type(exc).__name__}: {detail}") from exc

    ConfigInput._call_parser = staticmethod(call_parser)


def _run_cli(mf_cli: Any, flow: Any, args: list[str], entrypoint: list[str]) -> Any:
    """``metaflow.cli.main`` without click's standalone mode: a usage error (a Config
    value its parser refuses, say) is raised here instead of printed and exited on."""
    import warnings

    warnings.filterwarnings("ignore")  # as Metaflow's main does
    state = mf_cli.CliState(flow)
    state.entrypoint = entrypoint
    try:
        return mf_cli.start.main(args=args, obj=state, auto_envvar_prefix="METAFLOW",
                                 standalone_mode=False)
    finally:
        for part in (getattr(state, "monitor", None), getattr(state, "event_logger", None)):
            if part is not None:
                part.terminate()


def _register_command(mf_cli: Any) -> None:
    from metaflow._vendor import click

    @click.command("devd-spin-step", hidden=True, help="devd: run one step on warm parents.")
    @click.pass_context
    def devd_spin_step(ctx: Any) -> None:
        _State.result = _run_step(ctx.obj)

    mf_cli.cli.add_command(devd_spin_step)


def _apply_config_overrides(flow: Any) -> None:
    """Make the step body read the config values given to this spin (not the recorded ones)."""
    from metaflow.flowspec import FlowStateItems

    req = _State.request
    if not req.config_overrides:
        return
    configs = flow.__class__._flow_state[FlowStateItems.CONFIGS]
    for var, param in flow._get_parameters():
        if getattr(param, "IS_CONFIG_PARAMETER", False) and param.name in configs:
            value = configs[param.name][0]
            _State.spin_artifacts[var] = value
            for overrides in _State.join_artifacts.values():
                overrides[var] = value


def _warm_task_class() -> Any:
    from metaflow.task import MetaflowTask

    class WarmMetaflowTask(MetaflowTask):  # type: ignore[misc]
        """Metaflow's task runner, reading every join input from the warm parents."""

        def _init_data(self, run_id: str, join_type: Any, input_paths: list[str]) -> Any:
            # Above 4 inputs Metaflow switches to TaskDataStoreSet, which lists the spin
            # datastore instead of the parents (its spin fails there): one by one instead.
            datastores = []
            for path in input_paths:
                datastores += super()._init_data(run_id, join_type, [path])
            return datastores

    return WarmMetaflowTask


def _spun_task_in_client() -> None:
    """``current.task`` and ``current.run`` find the spun task, as in Metaflow's spin.

    They read it through the metadata the task is recorded in (the spin's own); the rest
    of the Client keeps reading the project's runs, so a step may still look at them.
    """
    from metaflow import Run, Task
    from metaflow.metaflow_current import Current

    def task(self: Any) -> Any:
        parts = (self._flow_name, self._run_id, self._step_name, self._task_id)
        if any(part is None for part in parts):
            return None
        return Task("/".join(parts), _namespace_check=False,
                    _current_metadata=self._metadata_str)

    def run(self: Any) -> Any:
        parts = (self._flow_name, self._run_id)
        if any(part is None for part in parts):
            return None
        return Run("/".join(parts), _namespace_check=False,
                   _current_metadata=self._metadata_str)

    Current.task = property(task, doc=Current.task.__doc__)
    Current.run = property(run, doc=Current.run.__doc__)


def _run_step(obj: Any) -> ChildResult | Outdated:
    task_class = _warm_task_class()

    req = _State.request
    flow = obj.flow
    step_func = getattr(flow, req.step)
    notices = []
    kept = []
    allowed = spin_kept_decorators()
    for deco in step_func.decorators:
        if any(deco.name.startswith(p) for p in allowed):
            kept.append(deco.name)
            if deco.name == "environment":
                env_vars = deco.attributes.get("vars") or {}
                os.environ.update({k: str(v) for k, v in env_vars.items()})
        else:
            notices.append(f"@{deco.name} skipped in a spin (it applies to `devd run`)")
    sink: dict[str, Any] = {}
    _capture_output_datastore(obj.flow_datastore, sink)
    run_id = obj.metadata.new_run_id()
    task_id = obj.metadata.new_task_id(run_id, req.step)
    if _State.prepared:  # all set: wait for the request itself
        _mark("prepare")
        req = _await_request()
        if isinstance(req, Outdated):
            return req
        _mark("idle")
    started = time.perf_counter()
    read_overrides(req)
    _apply_config_overrides(flow)
    spin_artifacts: Any = _State.spin_artifacts
    if obj.graph[req.step].type == "join":
        spin_artifacts = _State.join_artifacts
    _State.flow, _State.run_id, _State.task_id = flow, run_id, task_id
    task = task_class(
        flow, obj.flow_datastore, obj.metadata, obj.environment,
        lambda *a, **k: None, obj.event_logger, obj.monitor, None,
        orig_flow_datastore=_State.warm, spin_artifacts=spin_artifacts,
    )
    error = None
    _spun_task_in_client()
    if req.run_tags:  # current.tags, as the run's tasks had them (`run --tag ...`)
        obj.metadata.add_sticky_tags(tags=req.run_tags)
    _mark("setup")
    if req.debug:
        _attach_debugger(req)
    try:
        task.run_step(
            req.step, run_id, task_id, req.resumed_from, req.input_paths, req.split_index,
            req.retry_count, req.retry_count, kept, req.persist,
        )
    except BaseException as exc:  # the user's step failed (or Metaflow refused it)
        error = error_info(exc, req.flow_file)
        if req.pdb:
            from ..debugging import post_mortem

            post_mortem(exc)
    finally:
        if req.debug:
            from ..debugging import end_session

            end_session()
    sys.stdout.flush()
    sys.stderr.flush()
    _mark("step")
    return _build_result(sink, error, run_id, task_id, notices, started,
                         obj.flow_datastore.datastore_root if req.persist else None)


def _attach_debugger(req: SpinRequest) -> None:
    """Listen for a DAP client on loopback, say where, and wait for it (bounded)."""
    from ..debugging import list_parent_artifacts, listen, wait_for_client
    from ..forking import emit

    list_parent_artifacts()
    host, port = listen()
    emit("debugReady", {"host": host, "port": port})
    _mark("listen")
    wait_for_client(req.debug_timeout)
    _mark("attach")


def _store_cards(flow_datastore: Any, pathspec: str, cards: list[dict[str, Any]],
                 notices: list[str]) -> None:
    """A persisted spin's cards go where Metaflow's ``get_cards(task)`` looks for them:
    ``<ds-root>/mf.cards/...`` of the spun task's datastore, as ``card create`` writes."""
    try:
        from metaflow.datastore import FlowDataStore
        from metaflow.metaflow_config import CARD_SUFFIX
        from metaflow.plugins.cards.card_datastore import CardDatastore

        card_fds = FlowDataStore(
            flow_name=pathspec.split("/")[0], environment=None,
            storage_impl=type(flow_datastore._storage_impl),
            ds_root=os.path.join(flow_datastore.datastore_root, CARD_SUFFIX))
        store = CardDatastore(card_fds, pathspec=pathspec)
        for card in cards:
            if card.get("uuid") and card.get("html") and card.get("type") != "error":
                store.save_card(card["uuid"], card["type"], card["html"], card_id=card["id"])
    except Exception as exc:  # the spin's result stands; the card is not stored
        notices.append(f"cards of {pathspec} not stored ({type(exc).__name__}: {exc})")


def _build_result(sink: dict[str, Any], error: dict[str, Any] | None, run_id: str,
                  task_id: str, notices: list[str], started: float,
                  persisted_root: str | None) -> ChildResult:
    import cloudpickle

    req = _State.request
    produced = sink.get("produced", {})
    passdown = sink.get("passdown", {})
    shas = _sha_index() if passdown else {}
    rows = []
    values: dict[str, Any] = {}
    parent_values: dict[str, tuple[str, str]] = {}
    public: dict[str, Any] = {}
    hashes: dict[str, str | None] = {}
    unloaded: dict[str, tuple[Any, str]] = {}
    names = sorted(n for n in set(produced) | set(passdown)
                   if req.want_private or not n.startswith("_"))
    read_only = _unchanged_parent_objects(produced)
    for name in names:
        hashed: Any = _NOT_LOADED  # not computed yet
        if name not in produced and name in _State.spin_artifacts:
            produced[name] = _State.spin_artifacts[name]  # an overridden Parameter, say
        if name in read_only:  # a big parent value the step only read: passed down as is
            parent_values[name] = read_only[name]
            value = produced.pop(name)
        elif name in produced:
            value = produced[name]
            hashed = _content_hash(value) if req.want_diff and not name.startswith("_") \
                else None
            problem = _pickle_problem(value) if hashed is None else None
            if problem:  # Metaflow pickles every artifact it stores: say so in every spin
                notices.append(f"artifact `{name}` cannot be pickled ({problem}): a real run "
                               "would fail to store it")
            if req.want_values:
                try:  # pickled here, once: an unpicklable value must not sink the result
                    values[name] = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:
                    values[name] = cloudpickle.dumps(
                        Unpicklable(type(value).__qualname__, repr(value)[:200], str(exc)))
        else:
            hit = shas.get(passdown[name])
            if hit is None:
                continue
            parent_values[name] = (hit[0], hit[1])
            value = hit[2]
            if value is _NOT_LOADED:
                if not name.startswith("_"):
                    rows.append(_describe_unloaded(name, hit[3], hit[1]))
                    unloaded[name] = (hit[3], hit[1])
                    if req.want_diff:
                        hashes[name] = passdown[name]
                continue
        if not name.startswith("_"):
            shown = client_value(name, value)
            rows.append(describe(name, shown))
            public[name] = shown
            if req.want_diff:
                hashes[name] = passdown[name] if name not in produced and name in passdown \
                    else (_content_hash(value) if hashed is _NOT_LOADED else hashed)
    try:
        if _State.cards:  # a card shows every artifact: read the ones not loaded yet
            for name, (task, source) in unloaded.items():
                public[name] = client_value(name, WarmTaskDataStore(task)[source])
        card_html = _render_final_cards(public) if _State.cards else []
    except Exception:  # rendering must never cost the spin its result
        card_html = [{"id": None, "type": "error", "html": traceback.format_exc()}]
    if persisted_root and card_html:
        _store_cards(sink.get("flow_datastore"), f"{_State.flow.name}/{run_id}/{req.step}/"
                     f"{task_id}", card_html, notices)
    return ChildResult(
        lazy_loaded=list(LAZY_LOADED),
        card_html=card_html,
        hashes=hashes,
        ok=error is None,
        artifacts=rows,
        values=values,
        parent_values=parent_values,
        error=error,
        next_steps=sink.get("next_steps", []),
        run_id=run_id,
        task_id=task_id,
        persisted_root=persisted_root,
        cards=list(_State.cards),
        notices=notices,
        duration_s=time.perf_counter() - started,
    )


def _setup_failed(exc: BaseException, req: SpinRequest) -> ChildResult:
    """A result for failures before the step ran (flow import, configs, overrides)."""
    from ..errors import DevdError

    if isinstance(exc, SyntaxError):
        error = {"type": "SyntaxError", "message": exc.msg or str(exc),
                 "file": exc.filename or req.flow_file, "line": exc.lineno,
                 "traceback": "".join(traceback.format_exception_only(type(exc), exc))}
    elif isinstance(exc, DevdError):
        error = {"type": "devd.DevdError", "message": str(exc), "file": req.flow_file,
                 "line": None, "traceback": str(exc)}
    elif type(exc).__name__ == "DebugTimeout":  # nobody attached: the step did not run
        error = {"type": "devd.DebugTimeout", "message": str(exc), "file": req.flow_file,
                 "line": None, "traceback": str(exc)}
    elif _is_usage_error(exc):  # Metaflow's CLI refused the Configs given (bad input)
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        error = {"type": "devd.DevdError", "message": message, "file": req.flow_file,
                 "line": None, "traceback": message}
    else:
        error = error_info(exc, req.flow_file)
    return ChildResult(ok=False, artifacts=[], values={}, parent_values={}, error=error,
                       next_steps=[], run_id=None, task_id=None, persisted_root=None, cards=[],
                       notices=[], duration_s=0.0)


def _is_usage_error(exc: BaseException) -> bool:
    from metaflow._vendor.click.exceptions import UsageError

    return isinstance(exc, UsageError)


def read_overrides(req: SpinRequest) -> None:
    """Artifact overrides from ``--artifacts-module`` and Python, keyed as Metaflow keys them.

    For a join, Metaflow keys overrides by parent pathspec (``run/step/task``); a key
    ``Flow/run/step/task`` is accepted too, and plain names apply to every input.
    """
    from ..errors import DevdError

    merged: dict[str, Any] = {}
    if req.artifacts_module:
        merged.update(_read_artifacts_module(req.artifacts_module))
    for key, value in (req.artifacts or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and "/" in key:
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    inputs = ["/".join(p.split("/")[:3]) for p in req.input_paths]
    plain = {k: v for k, v in merged.items() if "/" not in k}
    per_input: dict[str, dict[str, Any]] = {p: dict(plain) for p in inputs}
    for key, value in merged.items():
        if "/" not in key:
            continue
        parts = key.strip("/").split("/")
        short = "/".join(parts[-3:])
        if short not in per_input or not isinstance(value, dict):
            raise DevdError(
                f"artifact override key '{key}' names no input of this step; "
                f"use one of: {', '.join(inputs)}"
            )
        per_input[short].update(value)
    _State.spin_artifacts = plain
    _State.join_artifacts = per_input


def _read_artifacts_module(given: str) -> dict[str, Any]:
    """``ARTIFACTS`` of an ``--artifacts-module`` file, each failure named by its real cause.

    Metaflow's own ``read_artifacts_module`` raises a ``NameError`` for every failure (it
    uses ``MetaflowInternalError`` without importing it), hiding the cause: read it here.
    """
    import importlib.machinery
    import importlib.util

    from ..errors import DevdError

    path = os.path.abspath(given)
    if not os.path.isfile(path):
        raise DevdError(f"{given}: no such artifacts module; pass a .py "
                        "file that defines ARTIFACTS = {...}")
    if not path.endswith(".py"):
        raise DevdError(f"{given}: not a .py file; an artifacts module is a Python file "
                        "that defines ARTIFACTS = {name: value}")
    name = os.path.splitext(os.path.basename(path))[0]
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        loader.exec_module(module)
    except SyntaxError as exc:
        raise DevdError(f"{given}:{exc.lineno}: SyntaxError: {exc.msg}") from None
    except BaseException as exc:  # noqa: BLE001 - user code: name whatever it raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        tb = traceback.extract_tb(exc.__traceback__)
        frames = [f for f in tb if os.path.abspath(f.filename) == path]
        where = f"{given}:{frames[-1].lineno}" if frames else given
        raise DevdError(f"{where}: importing the artifacts module raised "
                        f"{type(exc).__name__}: {exc}") from None
    if not hasattr(module, "ARTIFACTS"):
        raise DevdError(f"{given}: defines no ARTIFACTS; it must define "
                        "ARTIFACTS = {name: value}")
    artifacts = module.ARTIFACTS
    if not isinstance(artifacts, dict):
        raise DevdError(f"{given}: ARTIFACTS must be a dict, not {type(artifacts).__name__}")
    return artifacts


def _mark(name: str) -> None:
    _State.marks.append((name, time.perf_counter()))


def _stamp(paths: list[str]) -> list[tuple[str, int, int]]:
    stamps = []
    for path in paths:
        try:
            st = os.stat(path)
            stamps.append((path, st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((path, -1, -1))
    return stamps


def _source_files(req: SpinRequest) -> list[str]:
    """The files this child's flow came from: the user's modules and Config files."""
    from ..loader import user_modules

    files = {os.path.abspath(req.flow_file)}
    for module in user_modules().values():  # wherever they are: next to it, or not
        files.add(os.path.abspath(module.__file__))
    args = req.config_args
    files.update(os.path.abspath(args[i + 2]) for i, arg in enumerate(args[:-2])
                 if arg == "--config")
    files.update(req.data_files)
    return sorted(files)


def _await_request() -> SpinRequest | Outdated:
    """Block until the parent sends the request; refuse it if a source changed meanwhile."""
    import datetime

    from ..forking import emit, receive

    req = receive()
    for path, mtime, size in _State.stamps:
        if _stamp([path])[0] != (path, mtime, size):
            return Outdated(path)
    emit("accepted", None)
    _State.request = req
    _State.created_at = datetime.datetime.now()
    return req


def run_spin(req: SpinRequest, warm: Any, warm_tasks: list[Any],
             prepared: bool = False) -> ChildResult | Outdated:
    """Entry point in the child: set up Metaflow's CLI state and run the step.

    ``prepared``: do everything up to the step itself, then wait for the request (which
    must have the same ``prepared_key``) so that the spin only pays for running the step.
    """
    import datetime

    from metaflow import parameters
    from metaflow.plugins.datastores.spin_storage import SpinStorage
    from metaflow.plugins.metadata_providers.spin import SpinMetadataProvider

    from ..forking import NoRequest
    from ..loader import load_flow_class
    from ..warmstore import WarmFlowDataStore, load_task

    _State.marks = [("start", time.perf_counter())]
    _State.created_at = datetime.datetime.now()
    _State.prepared = prepared
    _State.result = None
    sys.stdout = _Tee(sys.stdout)
    sys.stderr = _Tee(sys.stderr)
    os.chdir(req.cwd)
    # A task process starts in Metaflow's default namespace (the user's), whatever the warm
    # process switched to (a notebook's namespace(None), a test's): reset it to "not set".
    from metaflow.client import core as client_core

    client_core.current_namespace = False
    if warm is None:  # spawn path: nothing is warm in a fresh interpreter
        warm_tasks = [load_task(ref) for ref in req.parent_refs]
        warm = WarmFlowDataStore(req.parent_refs[0].flow_name, warm_tasks)
    _State.request = req
    _State.warm = warm
    _State.warm_tasks = warm_tasks
    _State.cards = []
    # Where the spin metadata is: the warm process may have read another project's spins
    # (``inspect_spin``); ``current.task`` must look where this task is written.
    SpinMetadataProvider._INFO = None
    scratch = None
    if not req.persist:
        shm = "/dev/shm"
        scratch = tempfile.mkdtemp(prefix="devd-spin-",
                                   dir=shm if os.access(shm, os.W_OK) else None)
        SpinStorage.SYSROOT_VAR = os.path.join(scratch, SpinStorage.DATASTORE_DIR)
        os.mkdir(SpinStorage.SYSROOT_VAR)
    try:
        # The flow file is stamped before it is read: an edit while importing shows.
        flow_stamp = _stamp([os.path.abspath(req.flow_file)])
        flow_cls = load_flow_class(req.flow_file)
        if prepared:
            files = [f for f in _source_files(req) if f != flow_stamp[0][0]]
            _State.stamps = flow_stamp + _stamp(files)
        _mark("import")
        _install_card_capture()
        _quiet_skipped_decorators()
        _report_parser_failures()
        args = [
            "--quiet", "--no-pylint", "--datastore", "local", "--metadata", "local",
            "--environment", "local", "--event-logger", "nullSidecarLogger",
            "--monitor", "nullSidecarMonitor", *req.config_args,
            *_config_value_args(flow_cls, req.config_values), "devd-spin-step",
        ]
        with parameters.flow_context(flow_cls):
            mf_cli = _fresh_metaflow_cli()
            # Metaflow applies METAFLOW_DEFAULT_DECOSPECS to neither `spin` nor `spin-step`
            # (a default `timeout` or `retry` is for real runs); nor does devd's command.
            mf_cli.DEFAULT_DECOSPECS = ""
            _register_command(mf_cli)
            code = _run_cli(mf_cli, flow_cls(use_cli=False), args,
                            [sys.executable, req.flow_file])
        if _State.result is None:
            raise RuntimeError(f"Metaflow's CLI exited ({code}) before the step ran")
        if isinstance(_State.result, Outdated):
            return _State.result
        _mark("finish")
        marks = _State.marks
        _State.result.phases = {name: end - begin for (_, begin), (name, end)
                                in zip(marks, marks[1:], strict=False)}
        return _State.result
    except NoRequest:
        raise
    except BaseException as exc:  # the flow, its configs or the overrides are broken
        if prepared and _State.request is req:
            # Failed before the request came: the spin itself will report it, afresh.
            return Outdated(req.flow_file)
        return _setup_failed(exc, req)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
