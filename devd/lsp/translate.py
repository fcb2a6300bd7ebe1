"""Between JSON-RPC and the core: request params to plain values and paths, core values
to their wire JSON. Shared by the handlers, the language features and the server."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlparse

from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

from ..cards import update_payload
from ..events import (
    CardUpdated,
    EngineStatus,
    FileChanged,
    FileDeleted,
    RunFinished,
    SpinStarted,
)
from ..result import SpinResult


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
    """The absolute path of a ``file:`` URI (or of a bare path); other schemes are refused."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise JsonRpcInvalidParams(f"only file: URIs are supported, got '{uri}'")
    return os.path.abspath(unquote(parsed.path) if parsed.scheme else uri)


def required_path(args: dict[str, Any], method: str) -> str:
    """The flow file a devd/* request names in its ``uri``, which it must give."""
    uri = args.get("uri")
    if not uri:
        raise JsonRpcInvalidParams(f"{method} needs 'uri' (the flow file)")
    return uri_to_path(uri)


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


def state_changed_json(event: SpinStarted | FileChanged | FileDeleted | RunFinished,
                       ) -> dict[str, Any]:
    """devd/stateChanged's params for an engine event (keys in the order clients see them:
    reason first, ``uri`` last, present with ``flow``)."""
    params: dict[str, Any]
    if isinstance(event, SpinStarted):
        params = {"reason": "spinStarted", "flow": event.flow, "step": event.step}
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
                    params["stale"] = event.stale
    if "flow" in params:
        params["uri"] = from_fs_path(params["flow"])
    return params


def card_updated_json(event: CardUpdated) -> dict[str, Any]:
    """devd/cardUpdated's params: the card's live update as Metaflow's card page applies it."""
    return {"flow": event.flow, "step": event.step, "card": update_payload(event.entry),
            "uri": from_fs_path(event.flow)}


def status_json(status: EngineStatus, memory: dict[str, Any]) -> dict[str, Any]:
    """devd/status's answer: the engine's status and the daemon process's ``memory``."""
    return {
        "root": status.root,
        "pid": status.pid,
        "startedAt": status.started_at,
        "warm": [{"pathspec": t.pathspec, "sizeBytes": t.size_bytes,
                  "artifacts": t.artifacts, "loadSeconds": round(t.load_seconds, 3)}
                 for t in status.warm],
        "warmBytes": status.warm_bytes,
        "budgetBytes": status.budget_bytes,
        "running": [{"id": w.id, "kind": w.kind, "flow": w.flow, "step": w.step,
                     "seconds": round(w.seconds, 1)} for w in status.running],
        "flows": status.flows,
        "lastSpins": [{"flow": s.flow, "step": s.step, "ok": s.ok,
                       "durationMs": round(s.duration_s * 1000, 1)} for s in status.last_spins],
        "prepared": [{"flow": p.flow, "step": p.step, "pid": p.pid} for p in status.prepared],
        "memory": memory,
    }
