"""Between JSON-RPC and the core: LSP params to plain values and paths, core values to
their wire forms (a spin's as the ``SpinOutcome`` model, the one error shape as
``ErrorInfo``; devd/lsp/models.py). Shared by the handlers, the features and the server."""

from __future__ import annotations

import dataclasses
import os
from typing import Any
from urllib.parse import unquote, urlparse

from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

from ..common.cardpage import update_payload
from ..core.events import (
    CardUpdated,
    EngineStatus,
    FileChanged,
    FileDeleted,
    RunFinished,
    RunProgressed,
    SpinRefused,
    SpinStarted,
    StaleMarks,
)
from ..core.graph import FlowGraph, RunRecord
from ..core.memory import ProcessMemory
from ..core.result import SpinResult
from .flowmodels import GraphEdge, GraphNodeInfo, GraphResult, RunInfo, RunsResult
from .models import shared_converter
from .spinmodels import (
    ErrorInfo,
    LastSpin,
    MemoryStats,
    PreparedChild,
    RunningWork,
    SpinOutcome,
    StatusResult,
    WarmTaskInfo,
    WorkerInfo,
)


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
    """The absolute path of a ``file:`` URI (or of a bare path); other schemes, and a file
    URI naming a host (``file://otherhost/...``: a file of another machine, not this one's
    path), are refused; ``file://localhost/`` is this machine (RFC 8089)."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise JsonRpcInvalidParams(f"only file: URIs are supported, got '{uri}'")
    if parsed.netloc and parsed.netloc.lower() != "localhost":
        raise JsonRpcInvalidParams(f"'{uri}' names the host '{parsed.netloc}': devd serves "
                                   "local files only (file:///path)")
    return os.path.abspath(unquote(parsed.path) if parsed.scheme else uri)


def spin_outcome(result: SpinResult, uri: str, card_html: bool = True) -> SpinOutcome:
    """The wire form of a spin: its report (what ``devd spin --json`` prints) with the
    flow's ``uri``. Without ``card_html`` the cards are named, not included (an editor that
    shows them through devd/card need not receive ~1 MB per card twice)."""
    report = result.report()
    if not card_html:
        report.cards = [dataclasses.replace(card, html=None) for card in report.cards]
    return SpinOutcome(**{f.name: getattr(report, f.name) for f in dataclasses.fields(report)},
                       uri=uri)


def refusal(message: str, path: str | None = None) -> ErrorInfo:
    """The ``error`` of a request that cannot be served as asked (unknown step, no spin
    yet, no such artifact, no such file): one line, type ``devd.BadRequest``."""
    return ErrorInfo(type="devd.BadRequest", message=message, file=path)


def bad_request(message: str, uri: str | None, path: str | None) -> SpinOutcome:
    """A spin that could not start: the shape of a failed spin, with a one-line message."""
    return SpinOutcome(ok=False, uri=uri, error=refusal(message, path))


def state_changed_json(event: SpinStarted | SpinRefused | FileChanged | FileDeleted
                       | RunFinished) -> dict[str, Any]:
    """devd/stateChanged's params for an engine event (keys in the order clients see them:
    reason first, ``uri`` last, present with ``flow``)."""
    params: dict[str, Any]
    if isinstance(event, SpinStarted):
        params = {"reason": "spinStarted", "flow": event.flow, "step": event.step}
    elif isinstance(event, SpinRefused):
        params = {"reason": "spinRefused", "flow": event.flow, "step": event.step,
                  "error": event.message}
    elif isinstance(event, RunFinished):
        params = {"reason": f"{event.kind}Finished", "flow": event.flow,
                  "runId": event.run_id, "ok": event.ok}
    else:
        deleted = isinstance(event, FileDeleted)
        params = {"reason": "fileDeleted" if deleted else "fileChanged", "file": event.file}
        if event.flow:
            params["flow"] = event.flow
            if isinstance(event, FileChanged):
                if event.error is not None:
                    params["error"] = event.error
                else:
                    params["stale"] = shared_converter().unstructure(event.stale, StaleMarks)
    if "flow" in params:
        params["uri"] = from_fs_path(params["flow"])
    return params


def run_progress_json(event: RunProgressed) -> dict[str, Any]:
    """devd/runProgress's params: every step's state in the running run, in flow order."""
    return {"uri": from_fs_path(event.flow), "flow": event.flow, "runId": event.run_id,
            "steps": [{"step": name, "state": record.state, "tasks": record.tasks,
                       "tasksOk": record.ok, "durationS": record.duration_s}
                      for name, record in event.steps.items()]}


def card_updated_json(event: CardUpdated) -> dict[str, Any]:
    """devd/cardUpdated's params: the card's live update as Metaflow's card page applies it."""
    return {"flow": event.flow, "step": event.step, "card": update_payload(event.entry),
            "uri": from_fs_path(event.flow)}


def status_result(status: EngineStatus, memory: ProcessMemory) -> StatusResult:
    """devd/status's answer: the engine's status and the daemon process's ``memory``."""
    return StatusResult(
        root=status.root, pid=status.pid, started_at=status.started_at,
        warm=[WarmTaskInfo(pathspec=t.pathspec, size_bytes=t.size_bytes,
                           artifacts=t.artifacts, load_seconds=round(t.load_seconds, 3))
              for t in status.warm],
        warm_bytes=status.warm_bytes, budget_bytes=status.budget_bytes,
        running=[RunningWork(id=w.id, kind=w.kind, flow=w.flow, step=w.step,
                             seconds=round(w.seconds, 1)) for w in status.running],
        flows=status.flows,
        last_spins=[LastSpin(flow=s.flow, step=s.step, ok=s.ok,
                             duration_ms=round(s.duration_s * 1000, 1))
                    for s in status.last_spins],
        prepared=[PreparedChild(flow=p.flow, step=p.step, pid=p.pid) for p in status.prepared],
        workers=[WorkerInfo(environment=w.environment, python=w.python, pid=w.pid,
                            warm_bytes=w.warm_bytes, idle_s=round(w.idle_s, 1),
                            spins=w.spins) for w in status.workers],
        memory=MemoryStats(rss_bytes=memory.rss_bytes, malloc_arenas=memory.malloc_arenas,
                           tuned=memory.tuned))


def run_info(run: RunRecord) -> RunInfo:
    return RunInfo(run_id=run.run_id, status=run.status, created_at=run.created,
                   finished_at=run.finished, duration_s=run.duration_s, user=run.user,
                   tags=list(run.tags))


def graph_result(graph: FlowGraph) -> GraphResult:
    """``devd/graph``'s answer (and ``devd graph --json``'s, daemon or not)."""
    nodes = [GraphNodeInfo(
        step=n.step, type=n.type, line=n.line, next=list(n.next), state=n.state,
        stale=n.stale, tasks=n.tasks, tasks_ok=n.tasks_ok, duration_s=n.duration_s,
        foreach=n.foreach, condition=n.condition, cases=dict(n.cases),
        last_spin=n.last_spin, last_spin_at=n.last_spin_at) for n in graph.nodes]
    return GraphResult(ok=True, flow=graph.flow, file=graph.file,
                       run=run_info(graph.run) if graph.run is not None else None,
                       nodes=nodes,
                       edges=[GraphEdge(from_=a, to=b, label=label)
                              for a, b, label in graph.edges])


def runs_result(flow: str, runs: list[RunRecord]) -> RunsResult:
    return RunsResult(ok=True, flow=flow, runs=[run_info(r) for r in runs])
