"""devd's JSON-RPC methods: which model each takes and answers, and the converter that reads
and writes them.

The models are attrs classes, one per params, result and notification: the spin's and the
daemon's work in devd/lsp/spinmodels.py, the flow view's and runs explorer's in
devd/lsp/flowmodels.py, a recorded task's logs in devd/lsp/logmodels.py; how a field goes on
the wire (camelCase, absent or sent) in devd/lsp/wire.py. Requests arrive as them (the
server's ``get_message_type``), results and notifications leave as them; the extension's
TypeScript (vscode-extension/src/protocol.ts) is generated from this table
(devd/lsp/tsgen.py) and docs/protocol.md is checked against it
(tests/test_protocol_models.py). A new method is its models and a row here.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from ..core.result import SpinReport
from .flowmodels import (
    ArtifactValueParams,
    ArtifactValueResult,
    GraphParams,
    GraphResult,
    RunProgressParams,
    RunsParams,
    RunsResult,
    TaskCardParams,
    TaskParams,
    TaskResult,
    TasksParams,
    TasksResult,
)
from .logmodels import TaskLogsParams, TaskLogsResult
from .spinmodels import (
    ArtifactsParams,
    ArtifactsResult,
    CancelParams,
    CancelResult,
    CardParams,
    CardResult,
    CardUpdatedParams,
    DebugReadyParams,
    LogParams,
    ResumeParams,
    RunParams,
    RunResult,
    SpinOutcome,
    SpinParams,
    SpinTarget,
    StateChangedParams,
    StatusParams,
    StatusResult,
)
from .strict import structure
from .wire import fields, is_optional, nested_models, wire_name

REQUESTS: dict[str, tuple[type, type]] = {
    "devd/spin": (SpinParams, SpinOutcome),
    "devd/run": (RunParams, RunResult),
    "devd/resume": (ResumeParams, RunResult),
    "devd/cancel": (CancelParams, CancelResult),
    "devd/status": (StatusParams, StatusResult),
    "devd/card": (CardParams, CardResult),
    "devd/artifacts": (ArtifactsParams, ArtifactsResult),
    "devd/graph": (GraphParams, GraphResult),
    "devd/runs": (RunsParams, RunsResult),
    "devd/tasks": (TasksParams, TasksResult),
    "devd/task": (TaskParams, TaskResult),
    "devd/artifactValue": (ArtifactValueParams, ArtifactValueResult),
    "devd/taskCard": (TaskCardParams, CardResult),
    "devd/taskLogs": (TaskLogsParams, TaskLogsResult),
}
NOTIFICATIONS: dict[str, type] = {
    "devd/log": LogParams,
    "devd/spinFinished": SpinOutcome,
    "devd/stateChanged": StateChangedParams,
    "devd/cardUpdated": CardUpdatedParams,
    "devd/debugReady": DebugReadyParams,
    "devd/runProgress": RunProgressParams,
}


def _request_envelope(method: str, params: type) -> type:
    """The whole request message, as pygls structures it (lsprotocol's ``XxxRequest``)."""
    name = params.__name__.removesuffix("Params") + "Request"
    msg_id: Any = int | str
    return attrs.make_class(name, {
        "id": attrs.field(type=msg_id),
        "params": attrs.field(type=params),
        "method": attrs.field(type=str, default=method),
        "jsonrpc": attrs.field(type=str, default="2.0"),
    })


ENVELOPES: dict[str, type] = {m: _request_envelope(m, p) for m, (p, _) in REQUESTS.items()}
_MODELS: frozenset[type] = frozenset(nested_models(
    [SpinTarget, SpinReport, *(p for p, _ in REQUESTS.values()),
     *(r for _, r in REQUESTS.values()), *NOTIFICATIONS.values()]))  # and what they hold


def models() -> list[type]:
    """Every model, in a stable order (for the generated TypeScript)."""
    return sorted((m for m in _MODELS if m not in (SpinTarget, SpinReport)),  # bases
                  key=lambda m: m.__name__)


@functools.cache
def shared_converter() -> cattrs.Converter:
    """pygls's converter with devd's models registered, built once: building one registers
    every LSP type with cattrs (~8 ms), and the daemon makes a server per connection."""
    from pygls.protocol import default_converter

    return register(default_converter())


def register(converter: cattrs.Converter) -> cattrs.Converter:
    """Add the hooks that read and write devd's models to pygls's converter (LSP's own types
    keep lsprotocol's): written camelCase, ``opt`` fields left out when unset; read by
    devd/lsp/strict.py, JSON's types kept."""

    def unstructure_fn(cls: type) -> Any:
        renamed: dict[str, Any] = {
            a.name: override(rename=wire_name(a), omit_if_default=is_optional(a))
            for a in fields(cls)}
        return make_dict_unstructure_fn(cls, converter, **renamed)

    converter.register_unstructure_hook_factory(_is_model, unstructure_fn)
    converter.register_structure_hook_factory(
        _is_model, lambda cls: lambda value, _: structure(value, cls))
    return converter


def _is_model(cls: Any) -> bool:
    return cls in _MODELS
