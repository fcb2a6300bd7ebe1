"""The language features: configuration, open/save, code lenses, hover, completion and
diagnostics, in LSP types. What they show comes from devd/core/language.py (pure source
analysis) and the engine's warm state; nothing here loads a parent a user did not ask for.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

from ..common.errors import DevdError
from ..common.options import SpinOptions
from ..common.project import inside
from ..common.report import ArtifactRow
from ..common.summary import human_bytes
from ..common.warmstore import WarmTask
from ..core.engine import Engine
from ..core.flowmodel import FlowLoadError, FlowModel
from ..core.language import (
    available_names,
    code_lenses,
    completing_self,
    completion_source,
    describe_value,
    self_attribute_at,
    step_for_completion,
)
from ..core.result import Artifacts, SpinResult
from ..core.staleness import step_source_hashes
from .onespin import save_needs_spin, spin_on_save
from .translate import plain, uri_to_path

if TYPE_CHECKING:
    from .server import DevdServer

log = logging.getLogger("devd.lsp")


def register(server: DevdServer) -> None:
    """Register every language feature on ``server`` (pygls passes it as ``ls``)."""
    server.feature(types.INITIALIZE)(initialize)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration)
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    server.feature(types.TEXT_DOCUMENT_DID_SAVE)(did_save)
    server.feature(types.TEXT_DOCUMENT_CODE_LENS)(code_lens)
    server.feature(types.TEXT_DOCUMENT_HOVER)(hover)
    server.feature(types.TEXT_DOCUMENT_COMPLETION,
                   types.CompletionOptions(trigger_characters=["."]))(completion)


# -- handlers -------------------------------------------------------------------------------
def initialize(ls: DevdServer, params: types.InitializeParams) -> None:
    ls.lsp_client = True
    options = plain(params.initialization_options) or {}
    ls.spin_on_save = bool(options.get("spinOnSave", False))
    ls.card_html = bool(options.get("cardHtml", True))


def did_change_configuration(ls: DevdServer,
                             params: types.DidChangeConfigurationParams) -> None:
    settings = plain(params.settings) or {}
    devd = settings.get("devd", settings) if isinstance(settings, dict) else {}
    if isinstance(devd, dict) and "spinOnSave" in devd:
        ls.spin_on_save = bool(devd["spinOnSave"])


def project_file(ls: DevdServer, uri: str) -> str | None:
    """The path of ``uri`` if it is a file of this daemon's project, else None: a document
    opened anywhere else (/etc/passwd, another project) gets no flow session, no watch and
    no diagnostics. A URI naming another host is refused (JsonRpcInvalidParams)."""
    path = uri_to_path(uri)
    return path if inside(path, ls.engine.root) else None


def _notified_file(ls: DevdServer, uri: str) -> str | None:
    """project_file for a notification, which has no answer to carry a refusal: logged."""
    try:
        path = project_file(ls, uri)
    except JsonRpcInvalidParams as exc:
        log.info("ignored a document: %s", exc)
        return None
    if path is None:
        log.info("ignored %s: not a file of the project %s", uri, ls.engine.root)
    return path


def opened_source(ls: DevdServer, uri: str) -> str | None:
    """The text of a document the client opened (didOpen), None for any other: a document
    never opened would be read from disk on the event loop (a FIFO blocks it forever)."""
    doc = ls.workspace.text_documents.get(unquote(uri))
    return None if doc is None else doc.source


def did_open(ls: DevdServer, params: types.DidOpenTextDocumentParams) -> None:
    path = _notified_file(ls, params.text_document.uri)
    if path is not None:
        publish_diagnostics(ls, path)


def did_save(ls: DevdServer, params: types.DidSaveTextDocumentParams) -> None:
    path = _notified_file(ls, params.text_document.uri)
    if path is None:
        return
    ls.engine.forget_flow_file(path)
    publish_diagnostics(ls, path)
    step = ls.last_spun.get(path)
    if ls.spin_on_save and step and save_needs_spin(ls, path):
        spin_on_save(ls, path, step, lambda: _spin_on_save(ls, path, step))


async def code_lens(ls: DevdServer, params: types.CodeLensParams) -> list[types.CodeLens]:
    path = project_file(ls, params.text_document.uri)
    if path is None:
        return []
    model = await ls.in_pool(_model_or_none, ls.engine, path)
    if model is None:
        return []
    return [
        types.CodeLens(
            range=types.Range(types.Position(lens.line, 0), types.Position(lens.line, 0)),
            command=types.Command(title=lens.title, command=lens.command,
                                  arguments=lens.arguments),
        )
        for lens in code_lenses(model, params.text_document.uri)
    ]


async def hover(ls: DevdServer, params: types.HoverParams) -> types.Hover | None:
    path = project_file(ls, params.text_document.uri)
    source = opened_source(ls, params.text_document.uri)
    if path is None or source is None:
        return None
    name = self_attribute_at(source, params.position.line, params.position.character)
    if name is None:
        return None
    text = await ls.in_pool(hover_text, ls.engine, path, source, params.position.line, name)
    if text is None:
        return None
    return types.Hover(contents=types.MarkupContent(types.MarkupKind.Markdown, text))


async def completion(ls: DevdServer,
                     params: types.CompletionParams) -> types.CompletionList | None:
    path = project_file(ls, params.text_document.uri)
    source = opened_source(ls, params.text_document.uri)
    if path is None or source is None:
        return None
    prefix = completing_self(source, params.position.line, params.position.character)
    if prefix is None:
        return None
    names = await ls.in_pool(_completion_names, ls.engine, path, source, params.position.line)
    items = [types.CompletionItem(label=n, kind=types.CompletionItemKind.Field, detail=origin)
             for n, origin in names.items() if n.startswith(prefix)]
    return types.CompletionList(is_incomplete=False, items=items)


# -- diagnostics ------------------------------------------------------------------------------
def diagnostics_for(engine: Engine, path: str) -> list[types.Diagnostic]:
    """The flow's load error, Metaflow's lint errors, and the last failed spin of each step
    whose code has not changed since."""
    found: list[types.Diagnostic] = []
    try:
        model = engine.model(path)
    except FlowLoadError as exc:
        if exc.line is None and "not a Metaflow flow" in exc.message:
            return []
        return [_diag(exc.line, exc.message, "devd")]
    except DevdError:
        return []
    for err in model.lint_errors:
        found.append(_diag(err.line, err.message, "metaflow lint"))
    current: dict[str, str] | None = None
    for step, record in engine.last_spins(path).items():
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


def publish_diagnostics(ls: DevdServer, path: str) -> None:
    """Compute the file's diagnostics on the pool and send them (from any thread)."""
    def work() -> None:
        diagnostics = diagnostics_for(ls.engine, path)
        params = types.PublishDiagnosticsParams(uri=from_fs_path(path) or path,
                                                diagnostics=diagnostics)
        ls.notify_threadsafe(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, params)

    ls.pool.submit(work)


def _diag(line: int | None, message: str, source: str,
          severity: types.DiagnosticSeverity = types.DiagnosticSeverity.Error,
          ) -> types.Diagnostic:
    row = max((line or 1) - 1, 0)
    return types.Diagnostic(
        range=types.Range(types.Position(row, 0), types.Position(row, 200)),
        message=message, source=source, severity=severity)


def _spin_on_save(ls: DevdServer, path: str, step: str) -> SpinResult | None:
    """spinOnSave: spin again the step this client spun last (its result is broadcast)."""
    try:
        return ls.engine.spin(path, SpinOptions(step), owner=ls)
    except DevdError as exc:
        log.info("spin on save of %s in %s did not start: %s", step, path, exc)
        publish_diagnostics(ls, path)
        return None


# -- hover and completion -----------------------------------------------------------------------
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


def hover_text(engine: Engine, path: str, source: str, line: int, name: str) -> str | None:
    """Markdown for ``self.<name>`` on 0-based ``line``: its value from the last spin or a
    warm parent, else where it would come from."""
    model = _model_or_none(engine, path)
    if model is None:
        return None
    info = model.step_at_line(line + 1)
    if info is None:
        return None
    record = engine.last_spin(path, info.name)
    unloaded: tuple[ArtifactRow, str] | None = None
    values = record.result.all_values if record is not None and record.result.ok else {}
    if record is not None and name in values:
        when = record.result.pathspec or f"last spin of '{info.name}'"
        if not isinstance(values, Artifacts) or values.is_loaded(name):
            return describe_value(name, values[name], when)
        # a big parent value the step never read: a hover must not load it
        row = next((r for r in record.result.artifact_rows if r.name == name), None)
        unloaded = (row, when) if row is not None else None
    for warm in _warm_parents(engine, path, info.name):
        if name in warm.values:
            return describe_value(name, warm.values[name], f"task {warm.ref.pathspec}")
    if unloaded is not None:
        row, when = unloaded
        size = human_bytes(row.size_bytes)
        return (f"**self.{name}**: `{row.type}` — {row.summary}"
                f"{f' ({size})' if size else ''}\n\nfrom {when}")
    origins = available_names(model, source, info.name, set())
    if name in origins:
        return f"**self.{name}** — {origins[name]}; {_how_to_see(engine, path, info.name)}"
    return None


def _how_to_see(engine: Engine, path: str, step: str) -> str:
    """What shows a value the hover does not have: a spin of the step when a run has its
    parents (they load then, never for a hover), else a run of the flow first."""
    try:
        plan = engine.session(path).plan(step)
    except DevdError:
        return ("the flow has no run with this step's parents yet: Run Flow (Ctrl+Alt+R), "
                "then spin the step to see its value")
    return (f"spin '{step}' (Ctrl+Alt+S) to see its value; its parents come from run "
            f"{plan.origin_run_id}")


def _completion_names(engine: Engine, path: str, source: str, line: int) -> dict[str, str]:
    model = _model_or_none(engine, path)
    if model is None:
        return {}
    # The editor's text (maybe unsaved: a line typed after the step's last one is the step's).
    step = step_for_completion(model, source, line)
    if step is None:
        return {}
    warm: set[str] = set()
    for task in _warm_parents(engine, path, step):
        warm |= set(task.values)
    return available_names(model, completion_source(source, line), step, warm)

