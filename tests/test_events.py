"""The engine speaks in typed core events and a typed status; devd/lsp turns them into the
wire notifications clients have always read, key for key and byte for byte."""

from __future__ import annotations

import ast
import json
import logging
import shutil
from pathlib import Path

import pytest
from pygls.uris import from_fs_path

from devd.common.report import StaleMark
from devd.core.engine import Engine
from devd.core.events import (
    CardUpdated,
    EngineEvent,
    EngineStatus,
    FileChanged,
    FileDeleted,
    LastSpinStatus,
    PreparedStatus,
    RunFinished,
    SpinStarted,
    WarmTaskStatus,
    WorkStatus,
)
from devd.core.memory import ProcessMemory
from devd.lsp.models import shared_converter
from devd.lsp.translate import card_updated_json, state_changed_json, status_result
from tests.conftest import FLOWS

FLOW = "/p/flow.py"
URI = from_fs_path(FLOW)


@pytest.mark.parametrize(("event", "wire"), [
    (SpinStarted(FLOW, "train"),
     {"reason": "spinStarted", "flow": FLOW, "step": "train", "uri": URI}),
    (RunFinished(FLOW, "run", "17", True),
     {"reason": "runFinished", "flow": FLOW, "runId": "17", "ok": True, "uri": URI}),
    (RunFinished(FLOW, "resume", None, False),
     {"reason": "resumeFinished", "flow": FLOW, "runId": None, "ok": False, "uri": URI}),
    (FileChanged(FLOW, FLOW, stale={}),
     {"reason": "fileChanged", "file": FLOW, "flow": FLOW, "stale": {}, "uri": URI}),
    (FileChanged(FLOW, FLOW, stale={"b": [StaleMark("a", "code changed")]}),
     {"reason": "fileChanged", "file": FLOW, "flow": FLOW,
      "stale": {"b": [{"step": "a", "reason": "code changed"}]}, "uri": URI}),
    (FileChanged(FLOW, FLOW, error="SyntaxError: line 3"),
     {"reason": "fileChanged", "file": FLOW, "flow": FLOW, "error": "SyntaxError: line 3",
      "uri": URI}),
    (FileChanged("/p/cfg.toml"), {"reason": "fileChanged", "file": "/p/cfg.toml"}),
    (FileDeleted(FLOW, FLOW), {"reason": "fileDeleted", "file": FLOW, "flow": FLOW, "uri": URI}),
    (FileDeleted("/p/over.py"), {"reason": "fileDeleted", "file": "/p/over.py"}),
])
def test_state_changed_keeps_its_wire_form(event: EngineEvent, wire: dict) -> None:
    assert json.dumps(state_changed_json(event)) == json.dumps(wire)  # order too


def test_card_updated_is_built_from_the_childs_entry() -> None:
    entry = {"uuid": "u", "id": "c", "type": "default", "mode": "render",
             "data": {"render_seq": 3, "components": {"x": 1}}}
    assert json.dumps(card_updated_json(CardUpdated(FLOW, "train", entry))) == json.dumps({
        "flow": FLOW, "step": "train",
        "card": {"uuid": "u", "id": "c", "type": "default", "mode": "render", "renderSeq": 3,
                 "user": {}, "components": {"x": 1}},
        "uri": URI})


def test_status_keeps_its_wire_form() -> None:
    status = EngineStatus(
        root="/p", pid=7, started_at=1.5,
        warm=[WarmTaskStatus("F/1/a/2", 100, 3, 0.12345)], warm_bytes=100, budget_bytes=1000,
        running=[WorkStatus(4, "spin", FLOW, "train", 2.26)], flows=[FLOW],
        last_spins=[LastSpinStatus(FLOW, "train", True, 0.0234)],
        prepared=[PreparedStatus(FLOW, "train", 99)])
    memory = ProcessMemory(rss_bytes=1, malloc_arenas=2, tuned=False)
    answer = shared_converter().unstructure(status_result(status, memory))
    assert json.dumps(answer) == json.dumps({
        "root": "/p", "pid": 7, "startedAt": 1.5,
        "warm": [{"pathspec": "F/1/a/2", "sizeBytes": 100, "artifacts": 3,
                  "loadSeconds": 0.123}],
        "warmBytes": 100, "budgetBytes": 1000,
        "running": [{"id": 4, "kind": "spin", "flow": FLOW, "step": "train", "seconds": 2.3}],
        "flows": [FLOW],
        "lastSpins": [{"flow": FLOW, "step": "train", "ok": True, "durationMs": 23.4}],
        "prepared": [{"flow": FLOW, "step": "train", "pid": 99}],
        "memory": {"rssBytes": 1, "mallocArenas": 2, "tuned": False},
        "workers": []})


def test_the_engine_emits_typed_events_and_a_failing_listener_is_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    flow = tmp_path / "linear_flow.py"
    shutil.copy(FLOWS / "linear_flow.py", flow)
    engine = Engine(str(tmp_path), budget_bytes=1 << 20)
    seen: list[EngineEvent] = []

    def broken(event: EngineEvent) -> None:
        raise RuntimeError("client gone")

    engine.add_listener(broken)
    engine.add_listener(seen.append)
    try:
        engine.session(str(flow))
        status = engine.status()
        with caplog.at_level(logging.ERROR, logger="devd.engine"):
            engine.file_changed(str(flow))
            flow.unlink()
            engine.file_changed(str(flow))
    finally:
        engine.close()
    assert isinstance(status, EngineStatus) and status.flows == [str(flow)]
    assert seen == [FileChanged(str(flow), str(flow), stale={}),
                    FileDeleted(str(flow), str(flow))]  # the broken listener stopped nothing
    failures = [r for r in caplog.records if "listener failed on FileChanged" in r.getMessage()]
    assert failures and failures[0].exc_info is not None


def test_the_core_never_imports_the_protocol_libraries() -> None:
    devd = Path(__file__).parent.parent / "devd"
    offenders = []
    for path in sorted(devd.rglob("*.py")):
        rel = path.relative_to(devd)
        if rel.parts[0] == "lsp":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level \
                else []
            offenders += [f"{rel}: {n}" for n in names
                          if n.split(".")[0] in ("pygls", "lsprotocol", "cattrs")]
    assert offenders == []
