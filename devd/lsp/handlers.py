"""devd's own methods (devd/spin, run, resume, cancel, status, card, artifacts): each gets
its params as their model (checked and read by devd/lsp/rpcio.py), asks the engine, and
answers with a result model (devd/lsp/models.py). Work that takes time runs on the
server's pool, so the connection keeps answering hovers and lenses meanwhile."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

from ..common.errors import DevdError
from ..common.options import SpinOptions
from ..core.lastspins import SpinRecord
from ..core.memory import stats
from ..core.parents import parse_target
from .flowmodels import (
    ArtifactValueParams,
    ArtifactValueResult,
    GraphParams,
    GraphResult,
    RunsParams,
    RunsResult,
    TaskCardParams,
    TaskInfo,
    TaskParams,
    TaskResult,
    TasksParams,
    TasksResult,
    ValueView,
)
from .logmodels import TaskLog, TaskLogsParams, TaskLogsResult
from .models import shared_converter
from .onespin import RequestSpin, join_save_spin
from .panes import pane_options, pane_page
from .progress import RunProgress, TransferProgress
from .spinmodels import (
    ArtifactsParams,
    ArtifactsResult,
    ArtifactValue,
    CancelParams,
    CancelResult,
    CardParams,
    CardResult,
    DebugReadyParams,
    LogParams,
    ResumeParams,
    RunParams,
    RunResult,
    SpinOutcome,
    SpinTarget,
    StatusParams,
    StatusResult,
)
from .translate import (
    bad_request,
    graph_result,
    refusal,
    runs_result,
    spin_outcome,
    status_result,
    uri_to_path,
)
from .wire import UNSET

if TYPE_CHECKING:
    from .server import DevdServer

R = TypeVar("R")


def register(server: DevdServer) -> None:
    """Register devd's methods on ``server`` (pygls passes it as ``ls``). The methods that
    read runs, cards or artifacts do their work in the server's pool, off the event loop."""
    for method, handler in (("devd/spin", spin), ("devd/run", run), ("devd/resume", resume),
                            ("devd/cancel", cancel), ("devd/status", status),
                            ("devd/card", _in_pool(_card_request)),
                            ("devd/artifacts", _in_pool(_artifacts_request)),
                            ("devd/graph", _in_pool(_graph_request)),
                            ("devd/runs", _in_pool(_runs_request)),
                            ("devd/tasks", _in_pool(_tasks_request)),
                            ("devd/task", _in_pool(_task_request)),
                            ("devd/artifactValue", _in_pool(_artifact_value_request)),
                            ("devd/taskCard", _in_pool(_task_card_request)),
                            ("devd/taskLogs", _in_pool(_task_logs_request))):
        server.feature(method)(handler)


def _in_pool(work: Callable[[DevdServer, Any], R]) -> Callable[[DevdServer, Any],
                                                                 Awaitable[R]]:
    """A handler that runs ``work(ls, params)`` in the server's pool."""
    async def handler(ls: DevdServer, params: Any) -> R:
        return await ls.in_pool(work, ls, params)

    return handler


# -- handlers -------------------------------------------------------------------------------
async def spin(ls: DevdServer, params: SpinTarget) -> SpinOutcome:
    outcome: SpinOutcome = await ls.in_pool(_spin_request, ls, params)
    return outcome


async def run(ls: DevdServer, params: RunParams) -> RunResult:
    return await _run_request(ls, uri_to_path(params.uri), "run", list(params.args or []),
                              params.work_done_token)


async def resume(ls: DevdServer, params: ResumeParams) -> RunResult:
    extra = list(params.args or [])
    if params.origin_run_id:
        extra += ["--origin-run-id", str(params.origin_run_id)]
    if params.step:
        extra = [params.step, *extra]
    return await _run_request(ls, uri_to_path(params.uri), "resume", extra,
                              params.work_done_token)


def cancel(ls: DevdServer, params: CancelParams) -> CancelResult:
    return CancelResult(cancelled=ls.engine.cancel(params.target))


def status(ls: DevdServer, params: StatusParams) -> StatusResult:
    return status_result(ls.engine.status(), stats())


# -- the work behind them -----------------------------------------------------------------------
def _spin_request(server: DevdServer, params: SpinTarget) -> SpinOutcome:
    engine = server.engine
    uri, path = params.uri, uri_to_path(params.uri)
    if params.webview is not UNSET:  # the requester's card pane: previews with spinFinished
        server.pane = None if params.webview is None else \
            pane_options(params.webview, "devd/spin")
    progress = TransferProgress(server, params.work_done_token, "devd: parents")
    try:
        model = engine.model(path)
        target = engine.resolve_step(model, params.step, params.line, params.pathspec)
        if params.run_id is not None and not params.pathspec:  # the runs explorer's pin
            if not params.run_id or "/" in params.run_id:
                raise DevdError(f"runId must be a run's id (as `devd runs` lists them), not "
                                f"'{params.run_id}'")
            target = f"{params.run_id}/{target}"

        def log(stream: str, text: str) -> None:
            server.notify_threadsafe("devd/log", _log_params(stream, text, uri, target))

        def debug_ready(endpoint: dict[str, Any]) -> None:  # to the requester only
            server.notify_threadsafe("devd/debugReady", DebugReadyParams(
                uri=uri, step=target, host=endpoint["host"], port=endpoint["port"]))

        options = params.options(target)
        joined = join_save_spin(server, path, options)  # the save of this same Spin
        if joined is not None:
            result = joined
        else:
            with RequestSpin(server, path):
                result = engine.spin(path, options, on_log=log, owner=server,
                                     on_debug_ready=debug_ready, on_progress=progress.report)
    except DevdError as exc:
        return bad_request(str(exc), uri, path)
    finally:
        progress.end()
    server.last_spun[path] = result.step
    return spin_outcome(result, uri, server.card_html)


def _target_of(params: CardParams | ArtifactsParams, method: str) -> str:
    target = params.step or params.pathspec
    if not target:
        raise JsonRpcInvalidParams(f"{method} needs 'step' (or 'pathspec')")
    return target


def _card_request(server: DevdServer, params: CardParams) -> CardResult:
    """The last spin's cards and preview page; with spinIfMissing, spin when there is none.

    ``webview: {nonce, cspSource?, assets?}``: the preview is for a VS Code webview
    (devd/core/preview.py).
    """
    from ..core.preview import recorded_hashes, render_preview

    target = _target_of(params, "devd/card")
    pane = None
    if params.webview is not None:
        pane = server.pane = pane_options(params.webview, "devd/card")
    path = uri_to_path(params.uri)
    try:
        step, record = _last_spin_of(server, path, target, bool(params.spin_if_missing))
    except DevdError as exc:
        return CardResult(ok=False, step=target, cards=[], error=refusal(str(exc)))
    result = record.result
    if pane is not None:  # a pane shows the page only: the cards are in it already
        preview, assets = pane_page(result, pane)
        return CardResult(ok=True, step=step, preview=preview, assets=assets)
    preview = render_preview(result, recorded=recorded_hashes(result))
    outcome = spin_outcome(result, params.uri)
    return CardResult(ok=True, step=step, cards=outcome.cards, spin=outcome, preview=preview)


def _last_spin_of(server: DevdServer, path: str, target: str,
                  spin_if_missing: bool) -> tuple[str, SpinRecord]:
    """The step ``target`` names and this daemon's last spin of it (spun first when
    ``spin_if_missing``); DevdError when there is none."""
    engine = server.engine
    step = parse_target(engine.model(path), target).step
    record = engine.last_spin(path, step)
    if record is None and spin_if_missing:
        engine.spin(path, SpinOptions(target), owner=server)
        record = engine.last_spin(path, step)
    if record is None:
        raise DevdError(f"no spin of '{step}' yet in this daemon: spin it first")
    return step, record


def _graph_request(server: DevdServer, params: GraphParams) -> GraphResult:
    try:
        return graph_result(server.engine.graph(uri_to_path(params.uri), params.run_id))
    except DevdError as exc:
        return GraphResult(ok=False, error=refusal(str(exc)))


def _runs_request(server: DevdServer, params: RunsParams) -> RunsResult:
    from ..core.graph import recent_runs

    limit = params.limit if params.limit is not None else 20
    try:
        if limit < 1:
            raise DevdError("limit must be at least 1")
        model = server.engine.model(uri_to_path(params.uri))
        return runs_result(model.flow_name, recent_runs(model.flow_name, limit))
    except DevdError as exc:
        return RunsResult(ok=False, error=refusal(str(exc)))


def _tasks_request(server: DevdServer, params: TasksParams) -> TasksResult:
    from ..core.graph import step_tasks

    try:
        model = server.engine.model(uri_to_path(params.uri))
        found = step_tasks(model.flow_name, params.run_id, params.step)
    except DevdError as exc:
        return TasksResult(ok=False, error=refusal(str(exc)))
    return TasksResult(ok=True, tasks=[TaskInfo(
        pathspec=t.pathspec, task_id=t.task_id, state=t.state, index=t.index, input=t.input,
        duration_s=t.duration_s) for t in found])


def _task_request(server: DevdServer, params: TaskParams) -> TaskResult:
    from ..core.graph import task_artifacts

    try:
        server.engine.model(uri_to_path(params.uri))  # the flow's project, bound for the Client
        rows = task_artifacts(params.pathspec)
    except DevdError as exc:
        return TaskResult(ok=False, error=refusal(str(exc)))
    return TaskResult(ok=True, pathspec=params.pathspec, artifacts=rows)


def _artifact_value_request(server: DevdServer,
                            params: ArtifactValueParams) -> ArtifactValueResult:
    """One recorded artifact's value, read and rendered here (devd/core/artifactview.py);
    with ``webview`` its page for the pane, which carries the image (left out of ``value``)."""
    from ..core.artifactview import read_artifact, render_value_page

    pane = pane_options(params.webview, "devd/artifactValue") if params.webview else None
    try:
        server.engine.model(uri_to_path(params.uri))  # the flow's project, bound for the Client
        view = read_artifact(params.pathspec, params.name)
    except DevdError as exc:
        return ArtifactValueResult(ok=False, error=refusal(str(exc)))
    html = None
    if pane is not None:
        html = render_value_page(view, nonce=pane["nonce"], csp_source=pane["csp_source"])
        view.pop("data", None)
    return ArtifactValueResult(ok=True, value=shared_converter().structure(view, ValueView),
                               html=html)


def _task_logs_request(server: DevdServer, params: TaskLogsParams) -> TaskLogsResult:
    """The end of a recorded task's stdout and stderr (devd/core/tasklogs.py)."""
    from ..core.tasklogs import STREAMS, task_logs

    try:
        server.engine.model(uri_to_path(params.uri))  # the flow's project, bound for the Client
        found = task_logs(params.pathspec, (params.stream,) if params.stream else STREAMS,
                          params.tail if params.tail is not None else 200)
    except DevdError as exc:
        return TaskLogsResult(ok=False, error=refusal(str(exc)))
    return TaskLogsResult(ok=True, pathspec=params.pathspec, logs=[
        TaskLog(stream=stream, text=tail.text, lines=tail.lines, left_out=tail.left_out)
        for stream, tail in found.items()])


def _task_card_request(server: DevdServer, params: TaskCardParams) -> CardResult:
    """A recorded task's preview page with its stored cards (the runs explorer's Open Card)."""
    from ..core.preview import CardAssets, recorded_result, render_preview

    pane = pane_options(params.webview, "devd/taskCard") if params.webview else None
    try:
        server.engine.model(uri_to_path(params.uri))  # the flow's project, bound for the Client
        result = recorded_result(params.pathspec)
    except DevdError as exc:
        return CardResult(ok=False, step=params.pathspec, error=refusal(str(exc)))
    if pane is None:
        return CardResult(ok=True, step=result.step,
                          preview=render_preview(result, recorded_view=True))
    assets = CardAssets(pane["known"])
    page = render_preview(result, recorded_view=True, nonce=pane["nonce"],
                          csp_source=pane["csp_source"], assets=assets)
    return CardResult(ok=True, step=result.step, preview=page, assets=sorted(assets.sent))


def _artifacts_request(server: DevdServer, params: ArtifactsParams) -> ArtifactsResult:
    """The last spin's artifact rows and, with ``name``, a bounded repr of that one value
    (spinning first with spinIfMissing); a value is loaded only when it is asked for."""
    from ..common.summary import bounded_repr, describe

    target = _target_of(params, "devd/artifacts")
    try:
        step, record = _last_spin_of(server, uri_to_path(params.uri), target,
                                     bool(params.spin_if_missing))
    except DevdError as exc:
        return ArtifactsResult(ok=False, step=target, artifacts=[], error=refusal(str(exc)))
    result = record.result
    answer = ArtifactsResult(
        ok=True, step=step, spin_ok=result.ok, origin_run_id=result.origin_run_id,
        artifacts=list(result.artifact_rows), error=result.error)
    name = params.name
    if name:
        names = [row.name for row in result.artifact_rows]
        if name not in names:
            answer.ok = False
            answer.error = refusal(f"the last spin of '{step}' has no artifact '{name}'; it "
                                   f"has: {', '.join(names) or 'none'}")
            return answer
        value = result.all_values[name]
        row = describe(name, value)
        answer.value = ArtifactValue(name=row.name, type=row.type, summary=row.summary,
                                     repr=bounded_repr(value), size_bytes=row.size_bytes)
    return answer


def _log_params(stream: str, text: str, uri: str | None, step: str | None = None
                ) -> LogParams:
    return LogParams(stream="stderr" if stream == "stderr" else "stdout", text=text, uri=uri,
                     step=step)


async def _run_request(server: DevdServer, path: str, subcommand: str,
                       args: list[str], client_token: str | int | None) -> RunResult:
    """A run or resume, with its steps as ``$/progress`` (devd/lsp/progress.py)."""
    progress = RunProgress(server, subcommand, client_token)
    await progress.begin()
    uri = from_fs_path(path)

    def log(stream: str, text: str) -> None:
        server.notify_threadsafe("devd/log", _log_params(stream, text, uri))

    try:
        outcome = await server.in_pool(functools.partial(
            server.engine.run, path, subcommand, args, log, progress.step_done, owner=server))
    except DevdError as exc:
        return RunResult(ok=False, run_id=None, error=refusal(str(exc), path))
    finally:
        progress.end()
    return RunResult(ok=outcome.ok, run_id=outcome.run_id, returncode=outcome.returncode,
                     cancelled=True if outcome.cancelled else None)
