"""The preview page: a spin's cards in sandboxed frames beside devd's own panels.

One self-contained HTML document (jinja2 templates from ``cards/``, installed as
``devd.templates``): status, duration, staleness, the artifacts with a diff against the
recorded task, stdout and stderr, the error with its traceback, and the cards. It follows
VS Code's theme variables inside a webview and has light and dark defaults elsewhere.

For a VS Code webview, ``render_preview(..., nonce=N, csp_source=S)`` gives the page a
nonce-based Content-Security-Policy and puts ``nonce="N"`` on every inline script, the page's
and each card document's: a card's ``srcdoc`` frame inherits the page's policy.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .result import Artifacts, SpinResult
from .tracebacks import user_traceback, without_announcement

if TYPE_CHECKING:
    import jinja2


@functools.cache
def _templates() -> jinja2.Environment:
    """One jinja2 environment per process: it keeps the compiled templates (compiling the
    preview page took ~20 ms of every render); a source checkout's are reloaded when edited."""
    import jinja2

    try:
        root = resources.files("devd.templates")
        loader: jinja2.BaseLoader = jinja2.FunctionLoader(
            lambda name: root.joinpath(name).read_text(encoding="utf-8"))
    except (ModuleNotFoundError, FileNotFoundError):
        checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        here = os.path.join(checkout, "cards")
        loader = jinja2.FileSystemLoader(here)
    return jinja2.Environment(loader=loader, autoescape=True, keep_trailing_newline=True)


class WebviewOptionsError(ValueError):
    """A webview nonce or CSP source that cannot go into a Content-Security-Policy."""


_NONCE = re.compile(r"[A-Za-z0-9+/=_-]{16,256}")
# One or more CSP source expressions (a VS Code webview's cspSource is one, e.g.
# "https://*.vscode-cdn.net"): nothing that could end the directive or the attribute.
_CSP_SOURCE = re.compile(r"[A-Za-z0-9.*:/_+%'-]+( [A-Za-z0-9.*:/_+%'-]+){0,7}")


def check_webview(nonce: object, csp_source: object = None) -> None:
    """Raise WebviewOptionsError unless ``nonce`` (and ``csp_source``) are safe to use."""
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise WebviewOptionsError(
            "webview.nonce must be 16 to 256 characters of A-Z a-z 0-9 + / = _ -")
    if csp_source is not None and (not isinstance(csp_source, str) or len(csp_source) > 512
                                   or not _CSP_SOURCE.fullmatch(csp_source)):
        raise WebviewOptionsError(
            "webview.cspSource must be CSP source expressions (e.g. https://*.vscode-cdn.net)"
            " without ';' ',' or quotes other than single quotes")


_SCRIPT_OR_COMMENT = re.compile(r"<script(?=[\s/>])|<!--", re.IGNORECASE)
_SCRIPT_END = re.compile(r"</script(?=[\s/>])", re.IGNORECASE)
# One piece of a start tag: whitespace, an attribute (name, maybe = value), or a slash.
_TAG_PIECE = re.compile(r"""(\s+)|([^\s/>"'=][^\s/>"'=]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?|/""")


def _script_attributes(html: str, pos: int) -> tuple[str, int]:
    """The attributes of the ``<script`` start tag whose name ends at ``pos``, without any
    ``nonce`` attribute, and where the tag's ``>`` is (``len(html)`` if it has none)."""
    kept: list[str] = []
    space = ""
    while pos < len(html) and html[pos] != ">":
        piece = _TAG_PIECE.match(html, pos)
        if piece is None or not piece.group(0):
            kept.append(space + html[pos])  # a stray quote or '=': kept as it was
            space = ""
            pos += 1
            continue
        if piece.group(1) is not None:
            space += piece.group(0)
        elif piece.group(2) is not None and piece.group(2).lower() == "nonce":
            space = ""  # dropped with the space before it
        else:
            kept.append(space + piece.group(0))
            space = ""
        pos = piece.end()
    return "".join(kept) + space, pos


ASSET_MIN_CHARS = 32 * 1024  # scripts this big are shared between a pane's cards


class CardAssets:
    """Big card scripts (Metaflow's ~1 MB card renderer) sent to a pane once.

    A script of at least ASSET_MIN_CHARS gets ``data-devd-asset="<hash>"``; its body is left
    out when the pane already holds that hash (``known``), and the page puts it back from its
    own copy before the card loads (cards/preview.js). ``sent``: hashes sent in full.
    """

    def __init__(self, known: Iterable[str] = ()) -> None:
        if not isinstance(known, list | tuple | set | frozenset) or len(known) > 64 or \
                not all(isinstance(h, str) and len(h) <= 64 for h in known):
            raise WebviewOptionsError("webview.assets must be a list of at most 64 hashes of "
                                      "the card scripts the pane holds")
        self.known = set(known)
        self.sent: set[str] = set()

    def body(self, text: str) -> tuple[str, str]:
        """The attribute to add to the script's tag and the body to keep."""
        if len(text) < ASSET_MIN_CHARS:
            return "", text
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]
        if digest in self.known:
            return f' data-devd-asset="{digest}"', ""
        self.sent.add(digest)
        return f' data-devd-asset="{digest}"', text


def with_nonce(html: str, nonce: str, assets: CardAssets | None = None) -> str:
    """``html`` with ``nonce="..."`` on every ``<script>`` start tag, instead of any nonce
    the tag had: Chromium honours no nonce on an element with a duplicate attribute.

    Script bodies and comments are skipped, as an HTML parser skips them: a ``<script``
    inside a script's text (a string in a bundle) is not a tag. Idempotent. With
    ``assets``, big script bodies are marked and, when the pane has them, left out.
    """
    check_webview(nonce)
    mine = f' nonce="{nonce}"'
    out: list[str] = []
    pos = 0
    while True:
        found = _SCRIPT_OR_COMMENT.search(html, pos)
        if found is None:
            break
        if found.group(0) == "<!--":
            end = html.find("-->", found.end())
            stop = len(html) if end < 0 else end + 3
            out.append(html[pos:stop])
            pos = stop
            continue
        attributes, tag_end = _script_attributes(html, found.end())
        body_end = _SCRIPT_END.search(html, tag_end + 1)
        stop = len(html) if body_end is None else body_end.end()
        body_stop = len(html) if body_end is None else body_end.start()
        marker, body = "", html[tag_end + 1:body_stop]
        if assets is not None and body_end is not None and tag_end < len(html) \
                and "data-devd-asset" not in attributes:
            marker, body = assets.body(body)
        out.append(html[pos:found.end()] + mine + attributes + marker)
        if marker:
            out.append(">" + body + html[body_stop:stop])
        else:
            out.append(html[tag_end:stop])
        pos = stop
    out.append(html[pos:])
    return "".join(out)


def _recorded_store(result: SpinResult) -> Any:
    """The recorded task's datastore (nothing loaded yet), or None when it is unreadable."""
    if not result.recorded_task or not result.recorded_ds:
        return None
    from metaflow.datastore import FlowDataStore
    from metaflow.plugins import DATASTORES

    flow, run_id, step, task_id = result.recorded_task.split("/")
    ds_type, ds_root = result.recorded_ds
    impls = [d for d in DATASTORES if ds_type == d.TYPE]
    if not impls:
        return None
    try:
        datastore = FlowDataStore(flow, storage_impl=impls[0], ds_root=ds_root)
        return datastore.get_task_datastore(run_id, step, task_id, allow_not_done=True)
    except Exception:  # noqa: BLE001 - the recorded task is gone or its store unreadable:
        return None  # the page shows no diff against it, the spin's own results stand


def recorded_hashes(result: SpinResult) -> dict[str, str] | None:
    """Content hashes of the recorded task's public artifacts (no values are loaded)."""
    task = _recorded_store(result)
    if task is None:
        return None
    return {k: v for k, v in task._objects.items() if not k.startswith("_")}


RECORDED_VALUE_LIMIT = 64 * 1024 * 1024  # a bigger recorded value is not loaded for a diff


def recorded_summaries(result: SpinResult, names: list[str]) -> dict[str, str]:
    """diff_summary of the recorded task's value of each of ``names`` (the changed ones),
    loaded from its datastore; a value over RECORDED_VALUE_LIMIT is left out."""
    from ..common.summary import diff_summary

    task = _recorded_store(result) if names else None
    if task is None:
        return {}
    found: dict[str, str] = {}
    for name in names:
        size = (getattr(task, "_info", {}).get(name) or {}).get("size") or 0
        if size > RECORDED_VALUE_LIMIT:
            continue
        try:
            found[name] = diff_summary(task[name])
        except Exception:  # noqa: BLE001 - unpickling a user's type: the row says 'changed'
            continue
    return found


def _now_summary(result: SpinResult, row: dict[str, Any]) -> str:
    from ..common.summary import diff_summary

    values = result.all_values
    name = row["name"]
    loaded = values.is_loaded(name) if isinstance(values, Artifacts) else name in values
    if loaded and name in values:
        try:
            return diff_summary(values[name])
        except Exception:  # noqa: BLE001 - a user's __repr__: the child's summary stands
            pass
    return str(row.get("summary", ""))


def artifact_diff(result: SpinResult, recorded: dict[str, str] | None) -> list[dict[str, Any]]:
    """Rows with ``diff``: new, changed, unchanged, removed, or 'not compared'; a changed
    row has ``before`` and ``after`` (the recorded value's summary and the new one's)."""
    rows = []
    for artifact in result.artifact_rows:
        name = artifact.name
        mine = result.artifact_hashes.get(name)
        if recorded is None and result.recorded_task:
            diff = "not compared"  # there is a recorded task, but its hashes were not read
        elif recorded is None or name not in recorded:
            diff = "new"
        elif mine is None:
            diff = "not compared"
        else:
            diff = "unchanged" if recorded[name] == mine else "changed"
        rows.append({**dataclasses.asdict(artifact), "diff": diff})
    changed = [r["name"] for r in rows if r["diff"] == "changed"]
    before = recorded_summaries(result, changed)
    for row in rows:
        if row["name"] in before:
            row["before"] = before[row["name"]]
            row["after"] = _now_summary(result, row)
    for name in sorted(set(recorded or {}) - {r.name for r in result.artifact_rows}):
        rows.append({"name": name, "type": "", "summary": "set by the recorded task, not now",
                     "diff": "removed"})
    return rows


def render_preview(result: SpinResult, *, recorded: dict[str, str] | None = None,
                   events_url: str | None = None, recorded_view: bool = False,
                   nonce: str | None = None, csp_source: str | None = None,
                   assets: CardAssets | None = None) -> str:
    """The preview document of one spin (compute ``recorded`` with recorded_hashes).

    ``recorded_view``: ``result`` describes the recorded task itself (no diff column).
    ``nonce``: the page is for a VS Code webview: its policy allows scripts carrying that
    nonce only (and images from ``csp_source``, the webview's ``cspSource``), and every
    inline script, the page's and the cards', carries it. WebviewOptionsError when either
    is unsafe (see check_webview). ``assets`` (webview only): share big card scripts with
    the pane's copies (CardAssets).
    """
    if nonce is not None:
        check_webview(nonce, csp_source)
    elif csp_source is not None:
        raise WebviewOptionsError("webview.cspSource needs webview.nonce")
    error = dataclasses.asdict(result.error) if result.error else None
    if error and error.get("traceback"):
        error["user_traceback"] = user_traceback(error["traceback"])
    cards = []
    for index, html in enumerate(result.cards):
        info = result.card_info[index] if index < len(result.card_info) else {}
        if nonce is not None:
            html = with_nonce(html, nonce, assets)
        cards.append({"html": html, "type": info.get("type", "card"), "id": info.get("id"),
                      "uuid": info.get("uuid")})
    origin = ""
    if events_url:
        parsed = urlparse(events_url)
        origin = f"{parsed.scheme}://{parsed.netloc}"
    return _templates().get_template("preview.html.j2").render(
        flow=result.flow, step=result.step, ok=result.ok,
        duration_ms=round(result.duration_s * 1000, 1),
        origin_run_id=result.origin_run_id, pathspec=result.pathspec if result.persisted
        else None, stale=result.stale, notices=result.notices,
        error=error, cards=cards, artifacts=artifact_diff(result, recorded),
        recorded_task=result.recorded_task, stdout=result.stdout,
        stderr=without_announcement(result.stderr),
        compared=recorded is not None, recorded_view=recorded_view,
        events_url=events_url, events_origin=origin, nonce=nonce, csp_source=csp_source,
        split=result.split, environment=_environment(result),
    )


def _environment(result: SpinResult) -> dict[str, Any] | None:
    """Where a spin ran, for the header (``env: uv · .venv/bin/python 3.11``), when it was
    not the daemon's interpreter; the interpreter shown relative to the project."""
    if not result.environment:
        return None
    python = str(result.environment.get("python", ""))
    shown = os.path.relpath(python) if python.startswith(os.getcwd() + os.sep) else python
    return {**result.environment, "shown": shown}


def render_recorded(flow_file: str, pathspec: str) -> tuple[str, str]:
    """The preview of a recorded task with the cards Metaflow stored for it."""
    result = recorded_result(pathspec)
    return render_preview(result, recorded=None, recorded_view=True), result.step


def recorded_result(pathspec: str) -> SpinResult:
    """A recorded task as a spin's result: its artifacts, output and the cards Metaflow
    stored for it (render_preview with ``recorded_view=True`` shows it)."""
    from metaflow import Task
    from metaflow.cards import get_cards

    from ..common import clientcache
    from ..common.cardpage import with_live_bridge
    from ..common.errors import DevdError
    from ..common.summary import describe

    if pathspec.count("/") != 3:
        raise DevdError(f"--recorded needs a task pathspec Flow/RUN/STEP/TASK, got '{pathspec}'")
    clientcache.install()  # the recorded artifacts are unpickled: a checked, verified cache
    try:
        task = Task(pathspec, _namespace_check=False)
        artifacts = {a.id: a.data for a in task if not a.id.startswith("_")}
    except Exception as exc:  # noqa: BLE001 - the Client, a datastore, unpickling: one line naming the task
        raise DevdError(f"no readable task {pathspec} ({type(exc).__name__}: {exc})") from None
    try:
        cards = list(get_cards(task))
    except Exception:  # noqa: BLE001 - no readable cards: the page still shows the artifacts
        cards = []
    flow, run_id, step, _ = pathspec.split("/")
    duration = 0.0
    if task.finished_at and task.created_at:
        duration = (task.finished_at - task.created_at).total_seconds()
    return SpinResult(
        flow=flow, step=step, ok=bool(task.successful), artifacts=artifacts,
        artifact_rows=[describe(k, v) for k, v in sorted(artifacts.items())], error=None,
        stdout=task.stdout or "", stderr=task.stderr or "", next_steps=[],
        duration_s=duration, parents=[], origin_run_id=run_id,
        cards=[with_live_bridge(card.get()) for card in cards],  # sized, offline
        card_info=[{"id": card.id, "type": card.type} for card in cards],
        recorded_task=pathspec,
        artifact_hashes={},
    )
