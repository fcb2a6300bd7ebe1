"""The protocol layer: one pygls language server per client connection, one shared Engine.

Handlers only translate between JSON-RPC and the engine. Work that may take time (spins,
runs, loading a flow) goes to a thread pool so hovers and lenses stay instant.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from concurrent.futures import Executor
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.uris import from_fs_path

from .. import __version__
from ..engine import Engine, step_source_hashes
from ..errors import DevdError
from ..flowmodel import FlowLoadError, FlowModel
from ..language import (
    available_names,
    code_lenses,
    completing_self,
    describe_value,
    self_attribute_at,
)
from ..options import SpinOptions
from ..optiontable import SPIN_SPELLINGS
from ..parents import parse_target
from ..result import SpinResult
from ..summary import human_bytes
from ..warmstore import WarmTask

log = logging.getLogger("devd.server")


def plain(value: Any) -> Any:
    """Custom-method params arrive as pygls attribute objects: make them dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def uri_to_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise JsonRpcInvalidParams(f"only file: URIs are supported, got '{uri}'")
    return os.path.abspath(unquote(parsed.path) if parsed.scheme else uri)


def spin_json(result: SpinResult, uri: str, card_html: bool = True) -> dict[str, Any]:
    """The wire form of a spin; without ``card_html`` the cards are named, not included
    (an editor that shows them through devd/card need not receive ~1 MB per card twice)."""
    data = result.to_json()
    data["uri"] = uri
    if not card_html:
        data["cards"] = [{k: v for k, v in card.items() if k != "html"}
                         for card in data["cards"]]
    return data


def bad_request_json(message: str, uri: str | None, path: str | None) -> dict[str, Any]:
    """A spin that could not start: same shape as a failed spin, with a one-line message."""
    return {"ok": False, "uri": uri, "flow": None, "step": None, "durationMs": 0,
            "artifacts": [], "stdout": "", "stderr": "", "nextSteps": [], "cards": [],
            "error": {"type": "devd.BadRequest", "message": message, "file": path,
                      "line": None, "traceback": ""}}


class DevdProtocol(LanguageServerProtocol):
    """LSP protocol whose ``exit`` ends this connection only, never the shared daemon.

    Every method works for a bare JSON-RPC client that never sends ``initialize`` (the
    CLI): until one arrives, the client has no capabilities and an empty workspace
    (documents are read from disk).
    """

    def __init__(self, server: Any, converter: Any) -> None:
        super().__init__(server, converter)
        from pygls.workspace import Workspace

        self.client_capabilities = types.ClientCapabilities()
        self._workspace = Workspace(None, types.TextDocumentSyncKind.Full)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> None:
        closer = getattr(self._server, "close_connection", None)
        if closer is not None:
            closer()


@functools.cache
def shared_converter() -> Any:
    """pygls's converter, built once: building one registers every LSP type with cattrs
    (~8 ms), and the daemon makes a server per connection."""
    from pygls.protocol import default_converter

    return default_converter()


class DevdServer(LanguageServer):
    """One client's view of the shared engine."""

    def __init__(self, engine: Engine, pool: Executor) -> None:
        super().__init__("devd", __version__, protocol_cls=DevdProtocol,
                         converter_factory=shared_converter,
                         text_document_sync_kind=types.TextDocumentSyncKind.Full)
        self.engine = engine
        self.pool = pool
        self.loop: asyncio.AbstractEventLoop | None = None
        self.spin_on_save = False
        self.card_html = True  # initializationOptions.cardHtml: false leaves card HTML out
        # The card pane this client showed last (`webview` of its devd/spin or devd/card):
        # every spinFinished to it carries that pane's preview, one round trip less.
        self.pane: dict[str, Any] | None = None
        self.last_spun: dict[str, str] = {}  # path -> step last spun from this client
        self.close_connection: Any = None
        # Only an LSP client (one that sent `initialize`) gets broadcast notifications; a
        # bare JSON-RPC client such as the CLI gets just the logs of its own requests.
        self.lsp_client = False
        self._register()

    # -- plumbing ---------------------------------------------------------------------
    def notify_threadsafe(self, method: str, params: Any) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if threading.current_thread() is threading.main_thread() and _running_loop() is loop:
            self.protocol.notify(method, params)
        else:
            loop.call_soon_threadsafe(self.protocol.notify, method, params)

    async def in_pool(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, fn, *args)

    def on_engine_event(self, method: str, params: dict[str, Any]) -> None:
        """Forward engine events to this client; refresh what they affect."""
        if not self.lsp_client:
            return
        if method == "devd/spinFinished":
            result: SpinResult = params["result"]
            path = params["flow"]
            payload = spin_json(result, from_fs_path(path) or path, self.card_html)
            pane = self.pane
            if pane is not None:
                payload["preview"] = _pane_preview(result, pane)
            self.notify_threadsafe(method, payload)
            self.publish_diagnostics_threadsafe(path)
        elif method == "devd/cardUpdated":
            payload = dict(params)
            payload["uri"] = from_fs_path(params["flow"])
            self.notify_threadsafe(method, payload)
        else:
            payload = dict(params)
            if "flow" in payload:
                payload["uri"] = from_fs_path(payload["flow"])
            self.notify_threadsafe(method, payload)
            if payload.get("flow") and payload.get("reason") in ("fileChanged", "fileDeleted"):
                self.publish_diagnostics_threadsafe(payload["flow"])

    # -- diagnostics ----------------------------------------------------------------------
    def diagnostics_for(self, path: str) -> list[types.Diagnostic]:
        found: list[types.Diagnostic] = []
        try:
            model = self.engine.model(path)
        except FlowLoadError as exc:
            if exc.line is None and "not a Metaflow flow" in exc.message:
                return []
            return [_diag(exc.line, exc.message, "devd")]
        except DevdError:
            return []
        for err in model.lint_errors:
            found.append(_diag(err.line, err.message, "metaflow lint"))
        current: dict[str, str] | None = None
        for step, record in self.engine.last_spins(path).items():
            error = record.result.error
            if error is None or record.result.ok:
                continue
            if record.spun_source is not None:
                current = current if current is not None else step_source_hashes(model)
                if current.get(step) != record.spun_source:
                    continue  # the failing code has been edited since: no stale squiggle
            line = error.lineno if error.filename and \
                os.path.abspath(error.filename) == path else model.steps[step].def_line \
                if step in model.steps else None
            found.append(_diag(line, f"spin of '{step}' failed: {error.type}: {error.message}",
                               "devd spin", types.DiagnosticSeverity.Error))
        return found

    def publish_diagnostics(self, path: str) -> None:
        diagnostics = self.diagnostics_for(path)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=from_fs_path(path) or path,
                                           diagnostics=diagnostics))

    def publish_diagnostics_threadsafe(self, path: str) -> None:
        def work() -> None:
            diagnostics = self.diagnostics_for(path)
            params = types.PublishDiagnosticsParams(uri=from_fs_path(path) or path,
                                                    diagnostics=diagnostics)
            self.notify_threadsafe(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, params)

        self.pool.submit(work)

    # -- handlers -----------------------------------------------------------------------
    def _register(self) -> None:  # noqa: C901 - one place that lists every handler
        server = self

        @server.feature(types.INITIALIZE)
        def initialize(params: types.InitializeParams) -> None:
            server.lsp_client = True
            options = plain(params.initialization_options) or {}
            server.spin_on_save = bool(options.get("spinOnSave", False))
            server.card_html = bool(options.get("cardHtml", True))

        @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
        def did_change_configuration(params: types.DidChangeConfigurationParams) -> None:
            settings = plain(params.settings) or {}
            devd = settings.get("devd", settings) if isinstance(settings, dict) else {}
            if isinstance(devd, dict) and "spinOnSave" in devd:
                server.spin_on_save = bool(devd["spinOnSave"])

        @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
        async def did_open(params: types.DidOpenTextDocumentParams) -> None:
            path = uri_to_path(params.text_document.uri)
            await server.in_pool(server.publish_diagnostics_threadsafe, path)

        @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
        async def did_save(params: types.DidSaveTextDocumentParams) -> None:
            path = uri_to_path(params.text_document.uri)
            server.engine.forget_flow_file(path)
            server.publish_diagnostics_threadsafe(path)
            step = server.last_spun.get(path)
            if server.spin_on_save and step:
                server.pool.submit(_safe_spin, server, path, step)

        @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
        async def code_lens(params: types.CodeLensParams) -> list[types.CodeLens]:
            path = uri_to_path(params.text_document.uri)
            model = await server.in_pool(_model_or_none, server.engine, path)
            if model is None:
                return []
            return [
                types.CodeLens(
                    range=types.Range(types.Position(lens.line, 0),
                                      types.Position(lens.line, 0)),
                    command=types.Command(title=lens.title, command=lens.command,
                                          arguments=lens.arguments),
                )
                for lens in code_lenses(model, params.text_document.uri)
            ]

        @server.feature(types.TEXT_DOCUMENT_HOVER)
        async def hover(params: types.HoverParams) -> types.Hover | None:
            path = uri_to_path(params.text_document.uri)
            doc = server.workspace.get_text_document(params.text_document.uri)
            name = self_attribute_at(doc.source, params.position.line,
                                     params.position.character)
            if name is None:
                return None
            text = await server.in_pool(_hover_text, server.engine, path, doc.source,
                                        params.position.line, name)
            if text is None:
                return None
            return types.Hover(contents=types.MarkupContent(types.MarkupKind.Markdown, text))

        @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                        types.CompletionOptions(trigger_characters=["."]))
        async def completion(params: types.CompletionParams) -> types.CompletionList | None:
            path = uri_to_path(params.text_document.uri)
            doc = server.workspace.get_text_document(params.text_document.uri)
            prefix = completing_self(doc.source, params.position.line,
                                     params.position.character)
            if prefix is None:
                return None
            names = await server.in_pool(_completion_names, server.engine, path, doc.source,
                                         params.position.line)
            items = [types.CompletionItem(label=n, kind=types.CompletionItemKind.Field,
                                          detail=origin)
                     for n, origin in names.items() if n.startswith(prefix)]
            return types.CompletionList(is_incomplete=False, items=items)

        @server.feature("devd/spin")
        async def spin(params: Any) -> dict[str, Any]:
            args = plain(params) or {}
            uri = args.get("uri")
            if not uri:
                raise JsonRpcInvalidParams("devd/spin needs 'uri' (the flow file)")
            path = uri_to_path(uri)
            return await server.in_pool(_spin_request, server, path, uri, args)

        @server.feature("devd/run")
        async def run(params: Any) -> dict[str, Any]:
            args = plain(params) or {}
            path = _required_path(args, "devd/run")
            return await _run_request(server, path, "run", list(args.get("args") or []),
                                      args.get("workDoneToken"))

        @server.feature("devd/resume")
        async def resume(params: Any) -> dict[str, Any]:
            args = plain(params) or {}
            path = _required_path(args, "devd/resume")
            extra = list(args.get("args") or [])
            if args.get("originRunId"):
                extra += ["--origin-run-id", str(args["originRunId"])]
            if args.get("step"):
                extra = [str(args["step"]), *extra]
            return await _run_request(server, path, "resume", extra, args.get("workDoneToken"))

        @server.feature("devd/cancel")
        def cancel(params: Any) -> dict[str, Any]:
            args = plain(params) or {}
            return {"cancelled": server.engine.cancel(args.get("target"))}

        @server.feature("devd/status")
        def status(params: Any) -> dict[str, Any]:
            from ..memory import stats  # the daemon process's resident size and heap

            return {**server.engine.status(), "memory": stats()}

        @server.feature("devd/card")
        async def card(params: Any) -> dict[str, Any]:
            args = plain(params) or {}
            path = _required_path(args, "devd/card")
            return await server.in_pool(_card_request, server, path, args)

        @server.feature("devd/artifacts")
        async def artifacts(params: Any) -> dict[str, Any]:
            args = plain(params) or {}
            path = _required_path(args, "devd/artifacts")
            return await server.in_pool(_artifacts_request, server, path, args)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _diag(line: int | None, message: str, source: str,
          severity: types.DiagnosticSeverity = types.DiagnosticSeverity.Error,
          ) -> types.Diagnostic:
    row = max((line or 1) - 1, 0)
    return types.Diagnostic(
        range=types.Range(types.Position(row, 0), types.Position(row, 200)),
        message=message, source=source, severity=severity)


def _required_path(args: dict[str, Any], method: str) -> str:
    uri = args.get("uri")
    if not uri:
        raise JsonRpcInvalidParams(f"{method} needs 'uri' (the flow file)")
    return uri_to_path(uri)


def _model_or_none(engine: Engine, path: str) -> FlowModel | None:
    try:
        return engine.model(path)
    except DevdError:
        return None


def _warm_parents(engine: Engine, path: str, step: str) -> list[WarmTask]:
    """The parent tasks of ``step`` that are already warm (editor features never load any)."""
    try:
        plan = engine.session(path).plan(step)
    except DevdError:
        return []
    return [engine.store.get(ref) for ref in plan.parents if ref.pathspec in engine.store]


def _hover_text(engine: Engine, path: str, source: str, line: int, name: str) -> str | None:
    model = _model_or_none(engine, path)
    if model is None:
        return None
    info = model.step_at_line(line + 1)
    if info is None:
        return None
    record = engine.last_spin(path, info.name)
    unloaded = None
    if record is not None and record.result.ok and name in record.result.all_values:
        when = record.result.pathspec or f"last spin of '{info.name}'"
        if record.result.all_values.is_loaded(name):
            return describe_value(name, record.result.all_values[name], when)
        # a big parent value the step never read: a hover must not load it
        rows = {r["name"]: r for r in record.result.artifact_rows}
        unloaded = (rows.get(name), when)
    for warm in _warm_parents(engine, path, info.name):
        if name in warm.values:
            return describe_value(name, warm.values[name], f"task {warm.ref.pathspec}")
    if unloaded is not None and unloaded[0] is not None:
        row, when = unloaded
        size = human_bytes(row.get("sizeBytes"))
        return (f"**self.{name}**: `{row['type']}` — {row['summary']}"
                f"{f' ({size})' if size else ''}\n\nfrom {when}")
    origins = available_names(model, source, info.name, set())
    if name in origins:
        return f"**self.{name}** — {origins[name]}; spin or run the flow to see its value"
    return None


def _completion_names(engine: Engine, path: str, source: str, line: int) -> dict[str, str]:
    model = _model_or_none(engine, path)
    if model is None:
        return {}
    info = model.step_at_line(line + 1)
    if info is None:
        return {}
    warm: set[str] = set()
    for task in _warm_parents(engine, path, info.name):
        warm |= set(task.values)
    return available_names(model, source, info.name, warm)


def _spin_request(server: DevdServer, path: str, uri: str,
                  args: dict[str, Any]) -> dict[str, Any]:
    engine = server.engine
    if "webview" in args:  # the requester's card pane: its preview comes with spinFinished
        server.pane = None if args["webview"] is None else \
            _pane_options(args["webview"], "devd/spin")
    progress = _TransferProgress(server, args.get("workDoneToken"), "devd: parents")
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


def _pane_options(webview: Any, method: str) -> dict[str, Any]:
    """``webview: {nonce, cspSource?, assets?, version?}`` checked: the card pane a preview
    is rendered for (``_pane_page``; the client's pane is ``DevdServer.pane``)."""
    from ..preview import CardAssets, WebviewOptionsError, check_webview

    if not isinstance(webview, dict):
        raise JsonRpcInvalidParams(f"{method}: 'webview' must be {{nonce, cspSource?}}")
    version = webview.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise JsonRpcInvalidParams(f"{method}: 'webview.version' must be an integer")
    try:
        check_webview(webview.get("nonce"), webview.get("cspSource"))
        known = list(CardAssets(webview.get("assets") or []).known)
    except WebviewOptionsError as exc:
        raise JsonRpcInvalidParams(f"{method}: {exc}") from None
    return {"nonce": webview.get("nonce"), "csp_source": webview.get("cspSource"),
            "known": known, "version": version}


def _pane_page(result: SpinResult, pane: dict[str, Any]) -> tuple[str, list[str]]:
    """The preview page of ``result`` for a card pane, and the card scripts it carries in
    full (those the pane does not hold yet)."""
    from ..preview import CardAssets, recorded_hashes, render_preview

    assets = CardAssets(pane["known"])
    html = render_preview(result, recorded=recorded_hashes(result), nonce=pane["nonce"],
                          csp_source=pane["csp_source"], assets=assets)
    return html, sorted(assets.sent)


def _pane_preview(result: SpinResult, pane: dict[str, Any]) -> dict[str, Any] | None:
    """The ``preview`` of a spinFinished to the client with that pane, as devd/card answers
    it, with the pane's ``version`` (the extension drops it if its page changed meanwhile)."""
    try:
        html, assets = _pane_page(result, pane)
    except Exception:  # the pane asks with devd/card then, and gets the error there
        log.exception("rendering the pane's preview of %s", result.step)
        return None
    return {"html": html, "assets": assets, "version": pane["version"]}


class _TransferProgress:
    """``$/progress`` for parents downloading during a spin, begun at the first byte: on
    the client's ``workDoneToken`` (the CLI's), else on a token the server creates when
    the client supports window/workDoneProgress (an editor). Called from a pool thread."""

    def __init__(self, server: DevdServer, client_token: Any, title: str) -> None:
        self.server = server
        self.title = title
        valid = isinstance(client_token, str | int) and not isinstance(client_token, bool)
        self.client_token = client_token if valid else None
        self.token: Any = None
        self.begun = False  # set on the event loop
        self.ended = False

    def _loop(self) -> asyncio.AbstractEventLoop | None:
        loop = self.server.loop
        return loop if loop is not None and loop.is_running() else None

    def report(self, done: int, total: int, message: str) -> None:
        loop = self._loop()
        if loop is None:
            return
        percentage = int(100 * done / total) if total else 0
        if self.token is None:
            caps = self.server.client_capabilities
            if self.client_token is not None:
                self.token = self.client_token
            elif caps and caps.window and caps.window.work_done_progress:
                self.token = f"devd-download-{id(self)}"
            else:
                self.token = False  # nobody to tell
                return
            asyncio.run_coroutine_threadsafe(self._begin(message, percentage), loop)
            return
        if self.token is False:
            return
        report = types.WorkDoneProgressReport(message=message, percentage=percentage)
        loop.call_soon_threadsafe(self._send, report)

    async def _begin(self, message: str, percentage: int) -> None:
        progress = self.server.work_done_progress
        try:
            if self.token != self.client_token:
                await progress.create_async(self.token)
            progress.begin(self.token, types.WorkDoneProgressBegin(
                title=self.title, message=message, percentage=percentage, cancellable=False))
            self.begun = True
        except Exception:  # the client refused the token: no progress, the spin goes on
            self.token = False
            return
        if self.ended:  # the spin ended while the client answered
            self._finish()

    def _send(self, value: Any) -> None:
        if self.begun:
            self.server.work_done_progress.report(self.token, value)

    def end(self) -> None:
        loop = self._loop()
        if loop is None or not self.token:
            return
        loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        self.ended = True
        if self.begun:
            self.begun = False
            self.server.work_done_progress.end(self.token,
                                               types.WorkDoneProgressEnd(message="done"))
            self.server.work_done_progress.tokens.pop(self.token, None)


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
        pane = server.pane = _pane_options(args["webview"], "devd/card")
    try:
        step, record = _last_spin_of(server, path, target, bool(args.get("spinIfMissing")))
    except DevdError as exc:
        return {"ok": False, "step": target, "cards": [], "error": str(exc)}
    result = record.result
    if pane is not None:  # a pane shows the page only: the cards are in it already
        preview, assets = _pane_page(result, pane)
        return {"ok": True, "step": step, "preview": preview, "assets": assets}
    preview = render_preview(result, recorded=recorded_hashes(result))
    data = spin_json(result, args["uri"])
    return {"ok": True, "step": step, "cards": data["cards"], "spin": data,
            "preview": preview}


def _last_spin_of(server: DevdServer, path: str, target: str,
                  spin_if_missing: bool) -> tuple[str, Any]:
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


def _safe_spin(server: DevdServer, path: str, step: str) -> None:
    try:
        server.engine.spin(path, SpinOptions(step), owner=server)
    except DevdError:
        server.publish_diagnostics_threadsafe(path)


async def _run_request(server: DevdServer, path: str, subcommand: str,
                       args: list[str], client_token: Any = None) -> dict[str, Any]:
    """A run or resume; progress on the client's ``workDoneToken`` when it sent one, else on
    a token created with window/workDoneProgress/create when the client supports that."""
    token = f"devd-{subcommand}-{id(args)}"
    progress = False
    caps = server.client_capabilities
    if client_token is not None:
        if not isinstance(client_token, str | int) or isinstance(client_token, bool):
            raise JsonRpcInvalidParams("workDoneToken must be a string or an integer")
        token = client_token
        server.work_done_progress.begin(token, types.WorkDoneProgressBegin(
            title=f"devd {subcommand}", percentage=0, cancellable=False))
        progress = True
    elif caps and caps.window and caps.window.work_done_progress:
        try:
            await server.work_done_progress.create_async(token)
            server.work_done_progress.begin(token, types.WorkDoneProgressBegin(
                title=f"devd {subcommand}", percentage=0, cancellable=True))
            progress = True
        except Exception:
            progress = False

    def log(stream: str, text: str) -> None:
        server.notify_threadsafe("devd/log", {"stream": stream, "text": text,
                                              "uri": from_fs_path(path)})

    def step_done(done: int, total: int, step: str) -> None:
        if progress and server.loop is not None:
            report = types.WorkDoneProgressReport(message=f"{done}/{total} steps ({step})",
                                                  percentage=int(100 * done / max(total, 1)))
            server.loop.call_soon_threadsafe(server.work_done_progress.report, token, report)

    try:
        outcome = await server.in_pool(functools.partial(
            server.engine.run, path, subcommand, args, log, step_done, owner=server))
    except DevdError as exc:
        return {"ok": False, "runId": None, "error": str(exc)}
    finally:
        if progress:
            server.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))
            server.work_done_progress.tokens.pop(token, None)
    return {"ok": outcome.ok, "runId": outcome.run_id, "returncode": outcome.returncode}
