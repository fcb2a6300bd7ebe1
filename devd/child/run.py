"""The child's entry point: one spin, Metaflow's own task runner on warm parents.

The child imports the flow fresh, lets Metaflow's CLI resolve configs and initialise
decorators exactly as ``python flow.py spin`` would (devd/child/takeover.py), then runs
``MetaflowTask.run_step`` with the warm, in-memory parents. Everything it reports goes
back to the parent as plain data (devd/child/request.py).
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import os
import shutil
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

from ..common.bounds import bound_cards, bound_error, one_line
from ..common.report import SpinError
from ..common.warmstore import LAZY_LOADED
from .cardcapture import install_card_capture, render_final_cards, store_cards
from .collect import Sink, capture_output_datastore, collect
from .failure import error_info, setup_error
from .gate import RequestGate, gate_at_pre_step
from .handshake import await_request, source_files, stamp
from .overrides import apply_config_overrides, read_overrides
from .request import ChildResult, DebugReady, Outdated, SpinRequest, spin_kept_decorators
from .state import State, Tee, mark
from .takeover import run_cli, spun_task_in_client, warm_task_class

if TYPE_CHECKING:
    from ..common.warmstore import WarmFlowDataStore, WarmTask


def run_spin(req: SpinRequest, warm: WarmFlowDataStore | None, warm_tasks: list[WarmTask],
             prepared: bool = False) -> ChildResult | Outdated:
    """Entry point in the child: set up Metaflow's CLI state and run the step.

    ``prepared``: do everything up to the step itself, then wait for the request (which
    must have the same ``prepared_key``) so that the spin only pays for running the step.
    """
    from metaflow.plugins.datastores.spin_storage import SpinStorage
    from metaflow.plugins.metadata_providers.spin import SpinMetadataProvider

    from ..common.blobcache import DownloadProgress, set_process_watch
    from ..common.childside import NoRequest, emit
    from ..common.loader import load_flow_class
    from ..common.pagecheck import share_pages
    from ..common.scratch import make as make_scratch
    from ..common.warmstore import WarmFlowDataStore, load_task

    State.marks = [("start", time.perf_counter())]
    # the step (or its threads) reading a big parent: heard by the process that waits
    set_process_watch(lambda done, total, message:
                      emit(DownloadProgress(done, total, message)))
    State.created_at = datetime.datetime.now()
    State.prepared = prepared
    State.result = None
    sys.stdout = Tee(sys.stdout)
    sys.stderr = Tee(sys.stderr)
    os.chdir(req.cwd)
    # A task process starts in Metaflow's default namespace (the user's), whatever the warm
    # process switched to (a notebook's namespace(None), a test's): reset it to "not set".
    from metaflow.client import core as client_core

    client_core.current_namespace = False
    if warm is None:  # spawn path: nothing is warm in a fresh interpreter
        warm_tasks = [load_task(ref) for ref in req.parent_refs]
        for task in warm_tasks:
            task.ensure(req.warm_names.get(task.ref.pathspec, []))
        warm = WarmFlowDataStore(req.parent_refs[0].flow_name, warm_tasks)
        share_pages()  # so that the page map shows what the step writes to the parents
    State.request = req
    State.warm = warm
    State.warm_tasks = warm_tasks
    State.cards = []
    # Where the spin metadata is: the warm process may have read another project's spins
    # (``inspect_spin``); ``current.task`` must look where this task is written.
    SpinMetadataProvider._INFO = None  # type: ignore[attr-defined]
    from .metawrite import install as install_metadata_writer

    install_metadata_writer()
    scratch = None
    if not req.options.persist:
        scratch = State.scratch = make_scratch(os.getpid())
        SpinStorage.SYSROOT_VAR = os.path.join(scratch, SpinStorage.DATASTORE_DIR)
        os.mkdir(SpinStorage.SYSROOT_VAR)
        from .writebehind import install as write_behind

        write_behind()  # the throwaway task's files: written only if something reads them
    State.staging = None
    try:
        if req.options.persist:  # written aside, published only when the task is done
            from .persist import Staging

            State.staging = Staging()
        # The flow file is stamped before it is read: an edit while importing shows.
        flow_stamp = stamp([os.path.abspath(req.flow_file)])
        flow_cls = load_flow_class(req.flow_file)
        if prepared:
            files = [f for f in source_files(req) if f != flow_stamp[0][0]]
            State.stamps = flow_stamp + stamp(files)
        mark("import")
        install_card_capture()
        code = run_cli(flow_cls, req, _run_step)
        if State.result is None:
            raise RuntimeError(f"Metaflow's CLI exited ({code}) before the step ran")
        if isinstance(State.result, Outdated):
            return State.result
        mark("finish")
        marks = State.marks
        State.result.phases = {name: end - begin
                               for (_, begin), (name, end) in itertools.pairwise(marks)}
        if State.request.options.debug:  # within "step": time stopped in the debugger
            from ..common.debugging import paused_seconds

            State.result.phases["paused"] = paused_seconds()
        return State.result
    except NoRequest:
        raise
    except BaseException as exc:  # noqa: BLE001 - the flow, its configs or overrides broken
        if prepared and State.request is req:
            # Failed before the request came: the spin itself will report it, afresh.
            return Outdated(req.flow_file)
        return ChildResult(ok=False, artifacts=[], values={}, parent_values={},
                           error=setup_error(exc, req), next_steps=[], run_id=None,
                           task_id=None, persisted_root=None, cards=[], notices=[],
                           duration_s=0.0)
    finally:
        if scratch:  # before the result goes: what the step handed back that points into
            shutil.rmtree(scratch, ignore_errors=True)  # it (a Task of its own) must fail now
        if State.staging is not None:  # not published: nothing of it stays
            State.staging.discard()


def _run_step(obj: Any) -> ChildResult | Outdated:
    """devd's CLI command: the step run on warm parents with Metaflow's CLI state ``obj``."""
    task_class = warm_task_class()

    req = State.request
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
    sink = Sink()
    capture_output_datastore(obj.flow_datastore, sink)
    run_id = obj.metadata.new_run_id()
    task_id = obj.metadata.new_task_id(run_id, req.step)
    gate: RequestGate | None = None
    if State.prepared:  # all set: wait for the request itself
        mark("prepare")
        preloading = None
        if req.options.debug:  # made after a debug spin of the flow: the next may be one too
            from ..common.debugging import preload_in_background

            preloading = preload_in_background()
        from metaflow.plugins.datastores.spin_storage import SpinStorage

        from .pretouch import pretouch

        pretouch(None if req.options.persist else SpinStorage.SYSROOT_VAR, req)
        # Metaflow's task set-up too, up to the gate, when it can (devd/child/gate.py)
        gate = RequestGate.ahead_of(req, flow, preloading, _on_request)
        if gate is None:
            asked = await_request()
            if preloading is not None:  # done before the step runs (it may fork, say)
                preloading.join()
            if isinstance(asked, Outdated):
                return asked
            req = asked
            mark("idle")
    started = time.perf_counter()
    if gate is None:  # else read for the prepared request, and the request's at the gate
        read_overrides(req)
        apply_config_overrides(flow)
    spin_artifacts: Any = State.spin_artifacts
    if obj.graph[req.step].type == "join":
        spin_artifacts = State.join_artifacts
    State.flow, State.run_id, State.task_id = flow, run_id, task_id
    task = task_class(
        flow, obj.flow_datastore, obj.metadata, obj.environment,
        lambda *a, **k: None, obj.event_logger, obj.monitor, None,
        orig_flow_datastore=State.warm, spin_artifacts=spin_artifacts,
    )
    error: SpinError | None = None
    spun_task_in_client()
    if req.run_tags:  # current.tags, as the run's tasks had them (`run --tag ...`)
        obj.metadata.add_sticky_tags(tags=req.run_tags)
    if gate is None:
        _on_request(req)
    try:
        with gate_at_pre_step(gate) if gate is not None else contextlib.nullcontext():
            task.run_step(
                req.step, run_id, task_id, req.resumed_from, req.input_paths,
                req.split_index, req.retry_count, req.retry_count, kept,
                req.options.persist,
            )
    except BaseException as exc:  # the step failed (or Metaflow refused it)
        if gate is not None and not gate.passed:
            raise  # before the request came: the spin reports it, afresh (run_spin)
        req = State.request
        error = error_info(exc, req.flow_file)
        if req.options.pdb:
            from ..common.debugging import post_mortem

            post_mortem(exc)
        elif req.options.debug:  # caught here, so the client's "uncaught" filter stops too
            from ..common.debugging import stop_on_exception

            stop_on_exception(exc)
    finally:
        if (gate is None or gate.passed) and State.request.options.debug:
            from ..common.debugging import end_session

            end_session()
    if gate is not None:
        started, req = gate.started, State.request
    sys.stdout.flush()
    sys.stderr.flush()
    mark("step")
    result = _build_result(sink, error, run_id, task_id, notices, started,
                           obj.flow_datastore.datastore_root if req.options.persist else None)
    if State.staging is not None:
        _publish(State.staging, result, flow.name, req.step)
    return result


def _on_request(req: SpinRequest) -> None:
    """The spin has its request: the step's debugger attaches now, if it asked for one."""
    mark("setup")
    if req.options.debug:
        _attach_debugger(req)


def _publish(staging: Any, result: ChildResult, flow_name: str, step: str) -> None:
    """Move a persisted task into the spin root if Metaflow stored it whole, else drop it
    (the result then says it was not persisted, and why)."""
    reason = None
    if not staging.done(flow_name, result.run_id, step, result.task_id):
        reason = (result.error.message if result.error else None) or \
            "Metaflow did not finish storing it"
    else:
        try:
            staging.publish()
        except OSError as exc:
            reason = f"publishing it failed: {exc.strerror or exc}"
    if reason is not None:
        staging.discard()
        result.notices.append(one_line(
            f"--persist: the spun task was not stored ({reason}); nothing of it is left in "
            f"{staging.root}: free space there (or fix what the error names) and spin again"))
        result.persisted_root = None
    State.staging = None


def _attach_debugger(req: SpinRequest) -> None:
    """Listen for a DAP client on loopback, say where, and wait for it (bounded)."""
    from ..common.childside import emit
    from ..common.debugging import list_parent_artifacts, listen, wait_for_client

    list_parent_artifacts()
    host, port = listen()
    emit(DebugReady(host, port))
    mark("listen")
    wait_for_client(req.options.debug_timeout)
    mark("attach")


def _build_result(sink: Sink, error: SpinError | None, run_id: str, task_id: str,
                  notices: list[str], started: float,
                  persisted_root: str | None) -> ChildResult:
    """The result of a step that ran: its artifacts, its cards rendered, its error."""
    req = State.request
    found = collect(sink, notices)
    try:
        card_html = render_final_cards(found.every_public_value()) if State.cards else []
    except Exception:  # noqa: BLE001 - rendering must never cost the spin its result
        card_html = [{"id": None, "type": "error",
                      "html": bound_error({"traceback": traceback.format_exc()})["traceback"]}]
    if persisted_root and card_html:
        store_cards(sink.flow_datastore, f"{State.flow.name}/{run_id}/{req.step}/{task_id}",
                    card_html, notices)
    card_html = bound_cards(card_html)  # stored whole above; answered within the cap
    return ChildResult(
        lazy_loaded=list(LAZY_LOADED),
        card_html=card_html,
        hashes=found.hashes,
        ok=error is None,
        artifacts=found.rows,
        values=found.values,
        parent_values=found.parent_values,
        kept=found.kept,
        error=error,
        next_steps=sink.next_steps,
        run_id=run_id,
        task_id=task_id,
        persisted_root=persisted_root,
        cards=list(State.cards),
        notices=[one_line(n) for n in notices],  # a notice may quote the step's exception
        duration_s=time.perf_counter() - started,
    )
