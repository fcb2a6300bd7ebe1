"""The protocol's models (devd/lsp/models.py) against what is generated and written from
them: the extension's TypeScript, docs/protocol.md, the wire JSON of a spin, and the
one-line messages of params checked from them. No daemon: these run in milliseconds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cattrs
import pytest
from pygls.protocol import default_converter

from devd.common.options import SpinOptions
from devd.common.optiontable import SPIN_SPELLINGS
from devd.common.report import ArtifactRow, SpinError, StaleMark
from devd.core.events import CardUpdated, FileChanged, FileDeleted, RunFinished, SpinStarted
from devd.core.result import SpinResult
from devd.lsp import models, strict, tsgen, wire
from devd.lsp.translate import (
    bad_request,
    card_updated_json,
    spin_outcome,
    state_changed_json,
)

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "protocol.md").read_text()


@pytest.fixture(scope="module")
def converter() -> cattrs.Converter:
    return models.register(default_converter())


def test_the_extensions_protocol_ts_is_generated_from_the_models() -> None:
    written = tsgen.TARGET.read_text()
    assert written == tsgen.render(), \
        "vscode-extension/src/protocol.ts is stale: run `make protocol-ts`"


def test_every_spin_option_on_the_wire_is_a_field_of_spin_params() -> None:
    fields = {wire.wire_name(f): f for f in wire.fields(models.SpinParams)}
    for spelling in SPIN_SPELLINGS:
        if spelling.wire:
            assert spelling.wire in fields, spelling.wire
            assert wire.is_optional(fields[spelling.wire])
    rendered = tsgen.render()
    assert all(f"  {s.wire}?: " in rendered for s in SPIN_SPELLINGS if s.wire)


def test_spin_params_become_spin_options(converter: cattrs.Converter) -> None:
    params = converter.structure(
        {"uri": "file:///p/flow.py", "step": "train", "artifacts": {"k": 3},
         "configValue": {"cfg": '{"a": 1}'}, "fromSpin": True, "debugTimeout": 5,
         "unknownField": 1}, models.SpinParams)
    assert params.options("train") == SpinOptions(
        "train", artifacts={"k": 3}, config_value={"cfg": '{"a": 1}'}, from_spin=True,
        debug_timeout=5)
    assert params.webview is wire.UNSET  # absent: the pane stays as it was
    assert converter.structure({"uri": "u", "webview": None},
                               models.SpinParams).webview is None  # null: no pane


def _sections(doc: str) -> dict[str, str]:
    """Each method's text in the doc: its ### section, or its row of the notifications
    table."""
    found: dict[str, str] = {}
    for section in re.split(r"\n(?=#{2,3} )", doc):
        heading = section.splitlines()[0]
        for method in re.findall(r"`(devd/\w+)`", heading):
            found[method] = section
    for row in re.findall(r"^\| `(devd/\w+)` \|(.*)$", doc, flags=re.M):
        found[row[0]] = row[1]
    return found


def test_docs_protocol_md_names_every_method_and_field_and_nothing_else() -> None:
    sections = _sections(DOC)
    methods = {*models.REQUESTS, *models.NOTIFICATIONS}
    assert set(re.findall(r"`(devd/[A-Za-z]+)[` ]", DOC)) - methods == set(), \
        "docs/protocol.md names a method that does not exist"
    for method in methods:
        assert method in sections, f"docs/protocol.md has no section for {method}"
    described = {m: p for m, (p, _) in models.REQUESTS.items()}
    described.update(models.NOTIFICATIONS)
    described.pop("devd/spinFinished")  # "the spin result (shape above)"
    for method, cls in [*described.items(), *((m, r) for m, (_, r) in models.REQUESTS.items())]:
        text = sections[method] if cls is not models.SpinOutcome else sections["devd/spin"]
        for field in wire.fields(cls):
            assert re.search(rf"\b{wire.wire_name(field)}\b", text), \
                f"docs/protocol.md: {method} does not describe '{wire.wire_name(field)}'"


_RESULT: dict[str, Any] = {
    "flow": "F", "step": "train", "ok": True, "artifacts": {"k": 3},
    "artifact_rows": [ArtifactRow("k", "int", "3"),
                      ArtifactRow("X", "numpy.ndarray", "not loaded", 240)],
    "error": None, "stdout": "out", "stderr": "", "next_steps": ["join"],
    "duration_s": 0.0243, "parents": ["F/1/start/1"], "origin_run_id": "1",
    "pathspec": None, "persisted": False, "cards": ["<html>card</html>"],
    "card_info": [{"id": "report", "type": "blank", "uuid": "u-1"}],
    "notices": ["a notice"], "timings": {"child": 0.0239},
    "stale": [StaleMark("start", "code of step 'start' changed since run 1")],
    "recorded_task": "F/1/train/3"}

# What the daemon sends (and `devd spin --json` prints) for _RESULT, key for key.
_WIRE: dict[str, Any] = {
    "ok": True, "uri": "file:///p/flow.py", "flow": "F", "step": "train", "pathspec": None,
    "persisted": False, "durationMs": 24.3,
    "artifacts": [{"name": "k", "type": "int", "summary": "3"},
                  {"name": "X", "type": "numpy.ndarray", "summary": "not loaded",
                   "sizeBytes": 240}],
    "stdout": "out", "stderr": "", "error": None, "nextSteps": ["join"],
    "parents": ["F/1/start/1"], "originRunId": "1", "notices": ["a notice"],
    "timingsMs": {"child": 23.9},
    "cards": [{"index": 0, "id": "report", "type": "blank", "uuid": "u-1",
               "html": "<html>card</html>"}],
    "recordedTask": "F/1/train/3",
    "stale": [{"step": "start", "reason": "code of step 'start' changed since run 1"}]}


def _spin_result(**changes: Any) -> SpinResult:
    return SpinResult(**{**_RESULT, **changes})


@pytest.mark.parametrize("result,expected", [
    (_spin_result(), _WIRE),
    (_spin_result(ok=False, stale=[], cards=[], card_info=[],
                  error=SpinError("ZeroDivisionError", "division by zero", "/p/flow.py", 9,
                                  "Traceback ...")),
     {**{k: v for k, v in _WIRE.items() if k != "stale"}, "ok": False, "cards": [],
      "error": {"type": "ZeroDivisionError", "message": "division by zero",
                "file": "/p/flow.py", "line": 9, "traceback": "Traceback ..."}}),
    (_spin_result(pathspec="F/spin-1/train/1", persisted=True, split={"index": 2, "count": 6},
                  cancelled="superseded", error=SpinError("devd.Cancelled", "stopped",
                                                          "/p/flow.py", None, "stopped")),
     {**_WIRE, "pathspec": "F/spin-1/train/1", "persisted": True,
      "split": {"index": 2, "count": 6}, "cancelled": "superseded",
      "error": {"type": "devd.Cancelled", "message": "stopped", "file": "/p/flow.py",
                "traceback": "stopped"}}),
])
def test_a_spins_wire_form_is_its_report_exactly(converter: cattrs.Converter,
                                                 result: SpinResult,
                                                 expected: dict[str, Any]) -> None:
    """The spin's report (devd/core/result.py) on the wire, camelCase, optional keys left
    out when unset (``devd spin --json`` prints the same)."""
    wire = converter.unstructure(spin_outcome(result, "file:///p/flow.py"))
    assert wire == expected
    named = converter.unstructure(spin_outcome(result, "file:///p/flow.py", card_html=False))
    assert all("html" not in card for card in named["cards"])


def test_a_spin_that_cannot_start_has_the_one_error_shape(converter: cattrs.Converter) -> None:
    wire = converter.unstructure(bad_request("no step 'x'", "file:///p/f.py", "/p/f.py"))
    assert wire["ok"] is False and wire["step"] is None and wire["artifacts"] == []
    assert wire["error"] == {"type": "devd.BadRequest", "message": "no step 'x'",
                             "file": "/p/f.py"}


@pytest.mark.parametrize("method,params,message", [
    ("devd/spin", {}, "devd/spin needs 'uri' (the flow file)"),
    ("devd/spin", None, "devd/spin needs 'uri' (the flow file)"),
    ("devd/spin", [1], "devd/spin: params must be an object, got array"),
    ("devd/spin", {"uri": 5}, "devd/spin: 'uri' must be a string, got integer"),
    ("devd/spin", {"uri": "u", "line": True}, "devd/spin: 'line' must be an integer, got boolean"),
    ("devd/spin", {"uri": "u", "debugTimeout": "9"},
     "devd/spin: 'debugTimeout' must be an integer or a number, got string"),
    ("devd/spin", {"uri": "u", "config": {"cfg": 1}},
     "devd/spin: 'config['cfg']' must be a string, got integer"),
    ("devd/spin", {"uri": "u", "workDoneToken": 1.5},
     "devd/spin: 'workDoneToken' must be a string or an integer, got number"),
    ("devd/run", {"uri": "u", "args": ["--alpha", 3]},
     "devd/run: 'args[1]' must be a string, got integer"),
    ("devd/resume", {"uri": "u", "originRunId": []},
     "devd/resume: 'originRunId' must be a string or an integer, got array"),
    ("devd/card", {"uri": "u", "webview": "n"},
     "devd/card: 'webview' must be an object, got string"),
    ("devd/card", {"uri": "u", "webview": {}}, "devd/card needs 'webview.nonce'"),
    ("devd/card", {"uri": "u", "webview": {"nonce": "n", "version": "x"}},
     "devd/card: 'webview.version' must be an integer, got string"),
    ("devd/cancel", {"target": 7}, "devd/cancel: 'target' must be a string, got integer"),
    ("devd/status", {"anything": 1}, None),
    ("devd/spin", {"uri": "u", "step": None, "artifacts": {"k": [1]}, "other": 5}, None),
    ("textDocument/hover", 5, None),  # LSP's own: pygls and lsprotocol check those
])
def test_params_are_read_strictly_from_the_models_in_one_line(method: str, params: Any,
                                                        message: str | None) -> None:
    cls = models.REQUESTS[method][0] if method in models.REQUESTS else None
    assert (strict.check(method, params, cls) if cls else None) == message


def test_every_request_envelope_reads_its_typed_params(converter: cattrs.Converter) -> None:
    for method, (params_cls, _) in models.REQUESTS.items():
        needed = {wire.wire_name(f): "file:///p/f.py" for f in wire.fields(params_cls)
                  if f.required}
        message = converter.structure({"jsonrpc": "2.0", "id": 1, "method": method,
                                       "params": needed}, models.ENVELOPES[method])
        assert isinstance(message.params, params_cls), method


def _conforms(cls: type, data: dict[str, Any]) -> str | None:
    """What in ``data`` the model ``cls`` does not describe: a key it lacks, a required
    field missing, a value of another JSON type (None: nothing)."""
    extra = set(data) - {wire.wire_name(f) for f in wire.fields(cls)}
    if extra:
        return f"keys {sorted(extra)} are not fields of {cls.__name__}"
    return strict.check(cls.__name__, data, cls)


_FLOW = "/p/flow.py"


@pytest.mark.parametrize("event", [
    SpinStarted(_FLOW, "train"), RunFinished(_FLOW, "run", "17", True),
    RunFinished(_FLOW, "resume", None, False),
    FileChanged(_FLOW, _FLOW, stale={"b": [StaleMark("a", "code changed")]}),
    FileChanged(_FLOW, _FLOW, error="SyntaxError: line 3"), FileChanged("/p/cfg.toml"),
    FileDeleted(_FLOW, _FLOW),
])
def test_state_changed_notifications_are_what_the_model_says(event: Any) -> None:
    assert _conforms(models.StateChangedParams, state_changed_json(event)) is None
    assert _conforms(models.StateChangedParams, {"reason": "fileChanged", "oops": 1})


def test_card_updated_notifications_are_what_the_model_says() -> None:
    entry = {"uuid": "u", "id": "c", "type": "default", "mode": "render",
             "data": {"render_seq": 3, "components": {"x": 1}}}
    wire = card_updated_json(CardUpdated(_FLOW, "train", entry))
    assert _conforms(models.CardUpdatedParams, wire) is None
