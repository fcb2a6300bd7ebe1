"""devd's own methods (devd/spin, run, resume, cancel, status, card, artifacts): each reads
its params, asks the engine, and answers in wire JSON. Work that takes time runs on the
server's pool, so the connection keeps answering hovers and lenses meanwhile."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

from ..engine import SpinRecord
from ..errors import DevdError
from ..options import SpinOptions
from ..optiontable import SPIN_SPELLINGS
from ..parents import parse_target
from .panes import pane_options, pane_page
from .progress import RunProgress, TransferProgress
from .translate import bad_request_json, plain, required_path, spin_json, status_json

if TYPE_CHECKING:
    from .server import DevdServer


def register(server: DevdServer) -> None:
    """Register devd's methods on ``server`` (pygls passes it as ``ls``)."""
    for method, handler in (("devd/spin", spin), ("devd/run", run), ("devd/resume", resume),
                            ("devd/cancel", cancel), ("devd/status", status),
                            ("devd/card", card), ("devd/artifacts", artifacts)):
        server.feature(method)(handler)


# -- handlers -------------------------------------------------------------------------------
async def spin(ls: DevdServer, params: Any) -> dict[str, Any]:
    args = plain(params) or {}
    path = required_path(args, "devd/spin")
    return await ls.in_pool(_spin_request, ls, path, args["uri"], args)


async def run(ls: DevdServer, params: Any) -> dict[str, Any]:
    args = plain(params) or {}
    path = required_path(args, "devd/run")
    return await _run_request(ls, path, "run", list(args.get("args") or []),
                              args.get("workDoneToken"))


async def resume(ls: DevdServer, params: Any) -> dict[str, Any]:
    args = plain(params) or {}
    path = required_path(args, "devd/resume")
    extra = list(args.get("args") or [])
    if args.get("originRunId"):
        extra += ["--origin-run-id", str(args["originRunId"])]
    if args.get("step"):
        extra = [str(args["step"]), *extra]
    return await _run_request(ls, path, "resume", extra, args.get("workDoneToken"))


def cancel(ls: DevdServer, params: Any) -> dict[str, Any]:
    args = plain(params) or {}
    return {"cancelled": ls.engine.cancel(args.get("target"))}


def status(ls: DevdServer, params: Any) -> dict[str, Any]:
    from ..memory import stats  # the daemon process's resident size and heap

    return status_json(ls.engine.status(), stats())


async def card(ls: DevdServer, params: Any) -> dict[str, Any]:
    args = plain(params) or {}
    path = required_path(args, "devd/card")
    return await ls.in_pool(_card_request, ls, path, args)


async def artifacts(ls: DevdServer, params: Any) -> dict[str, Any]:
    args = plain(params) or {}
    path = required_path(args, "devd/artifacts")
    return await ls.in_pool(_artifacts_request, ls, path, args)


# -- the work behind them -----------------------------------------------------------------------
def _spin_request(server: DevdServer, path: str, uri: str,
                  args: dict[str, Any]) -> dict[str, Any]:
    engine = server.engine
    if "webview" in args:  # the requester's card pane: its preview comes with spinFinished
        server.pane = None if args["webview"] is None else \
            pane_options(args["webview"], "devd/spin")
    progress = TransferProgress(server, args.get("workDoneToken"), "devd: parents")
    try:
        model = engine.model(path)
        target = engine.resolve_step(model, args.get("step"), args.get("line"),
                                     args.get("pathspec"))

        def log(stream: str, text: str) -> None:
            server.notify_threadsafe("devd/log", {"stream": stream, "text": text,
                                                  "step": target, "uri": uri})

        def debug_ready(endpoint: dict[str, Any]) -> None:  # to the requester only
            server.notify_threadsafe("devd/debugReady", {"uri": uri, "step": target,
                                                         **endpoint})

        options = SpinOptions.of(target, **{row.field: args.get(row.wire)
                                            for row in SPIN_SPELLINGS if row.wire})
        result = engine.spin(path, options, on_log=log, owner=server,
                             on_debug_ready=debug_ready, on_progress=progress.report)
    except DevdError as exc:
        return bad_request_json(str(exc), uri, path)
    finally:
        progress.end()
    server.last_spun[path] = result.step
    return spin_json(result, uri, server.card_html)


def _card_request(server: DevdServer, path: str, args: dict[str, Any]) -> dict[str, Any]:
    """The last spin's cards and preview page; with spinIfMissing, spin when there is none.

    ``webview: {nonce, cspSource?, assets?}``: the preview is for a VS Code webview
    (devd/preview.py).
    """
    from ..preview import recorded_hashes, render_preview

    target = args.get("step") or args.get("pathspec")
    if not target:
        raise JsonRpcInvalidParams("devd/card needs 'step' (or 'pathspec')")
    pane = None
    if args.get("webview") is not None:
        pane = server.pane = pane_options(args["webview"], "devd/card")
    try:
        step, record = _last_spin_of(server, path, target, bool(args.get("spinIfMissing")))
    except DevdError as exc:
        return {"ok": False, "step": target, "cards": [], "error": str(exc)}
    result = record.result
    if pane is not None:  # a pane shows the page only: the cards are in it already
        preview, assets = pane_page(result, pane)
        return {"ok": True, "step": step, "preview": preview, "assets": assets}
    preview = render_preview(result, recorded=recorded_hashes(result))
    data = spin_json(result, args["uri"])
    return {"ok": True, "step": step, "cards": data["cards"], "spin": data,
            "preview": preview}


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


def _artifacts_request(server: DevdServer, path: str, args: dict[str, Any]) -> dict[str, Any]:
    """The last spin's artifact rows and, with ``name``, a bounded repr of that one value
    (spinning first with spinIfMissing); a value is loaded only when it is asked for."""
    from ..summary import bounded_repr, describe

    target = args.get("step") or args.get("pathspec")
    if not target:
        raise JsonRpcInvalidParams("devd/artifacts needs 'step' (or 'pathspec')")
    try:
        step, record = _last_spin_of(server, path, target, bool(args.get("spinIfMissing")))
    except DevdError as exc:
        return {"ok": False, "step": target, "artifacts": [], "error": str(exc)}
    result = record.result
    answer: dict[str, Any] = {
        "ok": True, "step": step, "spinOk": result.ok, "artifacts": result.artifact_rows,
        "originRunId": result.origin_run_id,
        "error": result.error.to_json() if result.error else None}
    name = args.get("name")
    if name:
        names = [row["name"] for row in result.artifact_rows]
        if name not in names:
            return {**answer, "ok": False,
                    "error": f"the last spin of '{step}' has no artifact '{name}'; it has: "
                             f"{', '.join(names) or 'none'}"}
        value = result.all_values[name]
        answer["value"] = {**describe(name, value), "repr": bounded_repr(value)}
    return answer


async def _run_request(server: DevdServer, path: str, subcommand: str,
                       args: list[str], client_token: Any = None) -> dict[str, Any]:
    """A run or resume, with its steps as ``$/progress`` (devd/lsp/progress.py)."""
    progress = RunProgress(server, subcommand, client_token)
    await progress.begin()
    uri = from_fs_path(path)

    def log(stream: str, text: str) -> None:
        server.notify_threadsafe("devd/log", {"stream": stream, "text": text, "uri": uri})

    try:
        outcome = await server.in_pool(functools.partial(
            server.engine.run, path, subcommand, args, log, progress.step_done, owner=server))
    except DevdError as exc:
        return {"ok": False, "runId": None, "error": str(exc)}
    finally:
        progress.end()
    return {"ok": outcome.ok, "runId": outcome.run_id, "returncode": outcome.returncode}
