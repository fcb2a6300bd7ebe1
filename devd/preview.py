"""The preview page: a spin's cards in sandboxed frames beside devd's own panels.

One self-contained HTML document (jinja2 templates from ``cards/``, installed as
``devd.templates``): status, duration, staleness, the artifacts with a diff against the
recorded task, stdout and stderr, the error with its traceback, and the cards. It follows
VS Code's theme variables inside a webview and has light and dark defaults elsewhere.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any
from urllib.parse import urlparse

from .result import SpinResult


def _templates() -> Any:
    import jinja2

    try:
        root = resources.files("devd.templates")
        loader: jinja2.BaseLoader = jinja2.FunctionLoader(
            lambda name: root.joinpath(name).read_text(encoding="utf-8"))
    except (ModuleNotFoundError, FileNotFoundError):
        here = os.path.join(os.path.dirname(os.path.dirname(__file__)), "cards")
        loader = jinja2.FileSystemLoader(here)
    return jinja2.Environment(loader=loader, autoescape=True, keep_trailing_newline=True)


def recorded_hashes(result: SpinResult) -> dict[str, str] | None:
    """Content hashes of the recorded task's public artifacts (no values are loaded)."""
    if not result.recorded_task or not result.recorded_ds:
        return None
    from metaflow.datastore import FlowDataStore
    from metaflow.plugins import DATASTORES

    flow, run_id, step, task_id = result.recorded_task.split("/")
    ds_type, ds_root = result.recorded_ds
    impls = [d for d in DATASTORES if d.TYPE == ds_type]
    if not impls:
        return None
    try:
        datastore = FlowDataStore(flow, storage_impl=impls[0], ds_root=ds_root)
        task = datastore.get_task_datastore(run_id, step, task_id, allow_not_done=True)
    except Exception:
        return None
    return {k: v for k, v in task._objects.items() if not k.startswith("_")}


def artifact_diff(result: SpinResult, recorded: dict[str, str] | None) -> list[dict[str, Any]]:
    """Rows with ``diff``: new, changed, unchanged, removed, or 'not compared'."""
    rows = []
    for row in result.artifact_rows:
        name = row["name"]
        mine = result.artifact_hashes.get(name)
        if recorded is None and result.recorded_task:
            diff = "not compared"  # there is a recorded task, but its hashes were not read
        elif recorded is None or name not in recorded:
            diff = "new"
        elif mine is None:
            diff = "not compared"
        else:
            diff = "unchanged" if recorded[name] == mine else "changed"
        rows.append({**row, "diff": diff})
    for name in sorted(set(recorded or {}) - {r["name"] for r in result.artifact_rows}):
        rows.append({"name": name, "type": "", "summary": "set by the recorded task, not now",
                     "diff": "removed"})
    return rows


def render_preview(result: SpinResult, *, recorded: dict[str, str] | None = None,
                   events_url: str | None = None, recorded_view: bool = False) -> str:
    """The preview document of one spin (compute ``recorded`` with recorded_hashes).

    ``recorded_view``: ``result`` describes the recorded task itself (no diff column).
    """
    data = result.to_json()
    cards = []
    for index, html in enumerate(result.cards):
        info = result.card_info[index] if index < len(result.card_info) else {}
        cards.append({"html": html, "type": info.get("type", "card"), "id": info.get("id"),
                      "uuid": info.get("uuid")})
    origin = ""
    if events_url:
        parsed = urlparse(events_url)
        origin = f"{parsed.scheme}://{parsed.netloc}"
    return _templates().get_template("preview.html.j2").render(
        flow=result.flow, step=result.step, ok=result.ok, duration_ms=data["durationMs"],
        origin_run_id=result.origin_run_id, pathspec=result.pathspec if result.persisted
        else None, stale=result.stale, notices=result.notices,
        error=data["error"], cards=cards, artifacts=artifact_diff(result, recorded),
        recorded_task=result.recorded_task, stdout=result.stdout, stderr=result.stderr,
        compared=recorded is not None, recorded_view=recorded_view,
        events_url=events_url, events_origin=origin,
    )


def render_recorded(flow_file: str, pathspec: str) -> tuple[str, str]:
    """The preview of a recorded task with the cards Metaflow stored for it."""
    from metaflow import Task
    from metaflow.cards import get_cards

    from .cards import with_live_bridge
    from .errors import DevdError
    from .summary import describe

    if pathspec.count("/") != 3:
        raise DevdError(f"--recorded needs a task pathspec Flow/RUN/STEP/TASK, got '{pathspec}'")
    try:
        task = Task(pathspec, _namespace_check=False)
        artifacts = {a.id: a.data for a in task if not a.id.startswith("_")}
    except Exception as exc:
        raise DevdError(f"no readable task {pathspec} ({type(exc).__name__}: {exc})") from None
    try:
        cards = list(get_cards(task))
    except Exception:
        cards = []
    flow, run_id, step, _ = pathspec.split("/")
    duration = 0.0
    if task.finished_at and task.created_at:
        duration = (task.finished_at - task.created_at).total_seconds()
    result = SpinResult(
        flow=flow, step=step, ok=bool(task.successful), artifacts=artifacts,
        artifact_rows=[describe(k, v) for k, v in sorted(artifacts.items())], error=None,
        stdout=task.stdout or "", stderr=task.stderr or "", next_steps=[],
        duration_s=duration, parents=[], origin_run_id=run_id,
        cards=[with_live_bridge(card.get()) for card in cards],  # sized, offline
        card_info=[{"id": card.id, "type": card.type} for card in cards],
        recorded_task=pathspec,
        artifact_hashes={},
    )
    return render_preview(result, recorded=None, recorded_view=True), step
