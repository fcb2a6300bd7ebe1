"""Cards rendered in the spin's child and the preview page, checked in a real Chromium.

Every assertion is about what a person would see in the browser: headings, table cells,
the progress value, the image, the artifact diff, the error panel, and a live update that
reaches an open page without reloading it. Screenshots go to the test's tmp dir and to
``out/screenshots/`` (gitignored) for a human look.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import devd
from devd import Session
from devd.common.cardpage import update_payload
from devd.common.report import StaleMark
from devd.core.preview import recorded_hashes, render_preview

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "out" / "screenshots"
FLOW = "card_flow.py"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def find_chromium() -> tuple[str | None, str]:
    """Debian's chromium, installed with apt-get when missing and possible; else why not."""
    path = shutil.which("chromium")
    if path:
        return path, ""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "chromium is not installed and apt-get cannot run here (not root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            return None, f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-300:]}"
    path = shutil.which("chromium")
    return (path, "") if path else (None, "apt-get installed no chromium binary")


@pytest.fixture(scope="module")
def browser() -> Any:
    exe, why = find_chromium()
    if exe is None:
        pytest.skip(f"cannot render cards in a browser: {why}")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    pw.stop()


class Watched:
    """A page whose script errors and network requests are recorded."""

    def __init__(self, browser: Any, width: int = 1200, height: int = 900) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", lambda req: self.requests.append(req.url))

    def remote_requests(self, allowed: str = "") -> list[str]:
        return [u for u in self.requests if u.startswith(("http:", "https:"))
                and not (allowed and u.startswith(allowed))]

    def shot(self, tmp_path: Path, name: str, full_page: bool = True) -> Path:
        """A screenshot; a full page one through a viewport as tall as the page (frames
        below a viewport are not painted into Chromium's full-page captures)."""
        path = tmp_path / f"{name}.png"
        size = self.page.viewport_size
        if full_page:
            height = self.page.evaluate("document.documentElement.scrollHeight")
            self.page.set_viewport_size({"width": size["width"], "height": min(height, 8000)})
            self.page.wait_for_timeout(300)
        self.page.screenshot(path=str(path))
        self.page.set_viewport_size(size)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / path.name)
        return path

    def close(self) -> None:
        self.page.close()


def card_file(tmp_path: Path, name: str, html: str) -> str:
    path = tmp_path / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    return path.as_uri()


def test_spin_renders_each_card_as_an_offline_document(in_project: Path, browser: Any,
                                                        tmp_path: Path) -> None:
    result = devd.spin(FLOW, "report")
    assert result.ok, result.error and result.error.traceback
    assert len(result.cards) == 2
    assert all(html.lstrip().lower().startswith("<!doctype html") for html in result.cards)
    cards = {(c.id, c.type): c.html for c in result.report().cards}
    assert set(cards) == {(None, "default"), ("report", "blank")}

    blank = Watched(browser)
    blank.page.goto(card_file(tmp_path, "blank", cards[("report", "blank")]))
    page = blank.page
    assert page.locator("h1", has_text="Quarterly report").is_visible()
    cells = page.locator("td").all_inner_texts()
    assert [c.strip() for c in cells[:4]] == ["north", "4", "south", "8"]
    image = page.locator("img").first
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    assert image.evaluate("img => img.complete && img.naturalWidth") == 2
    assert page.locator("progress").get_attribute("value") == "7"
    assert "7/10" in page.locator("body").inner_text()
    assert "93%" in page.locator(".value-box").inner_text()
    blank.shot(tmp_path, "card-blank-report")
    assert blank.errors == [] and blank.remote_requests() == []
    blank.close()

    default = Watched(browser)
    default.page.goto(card_file(tmp_path, "default", cards[(None, "default")]))
    text = default.page.locator("body").inner_text()
    for expected in ("Task Code", "def report(self):", "Artifacts", "total",
                     "Notes from the default card", "DAG"):
        assert expected in text, expected
    default.shot(tmp_path, "card-default-report")
    assert default.errors == [] and default.remote_requests() == []
    default.close()


def test_a_card_that_fails_shows_metaflows_error_card(in_project: Path, browser: Any,
                                                       tmp_path: Path) -> None:
    from metaflow import Flow, namespace
    from metaflow.cards import get_cards

    result = devd.spin(FLOW, "broken")
    assert result.ok  # a failing card never fails the step
    assert [c["type"] for c in result.card_info] == ["test_error_card"]
    namespace(None)
    recorded = list(get_cards(Flow("CardFlow").latest_run["broken"].task))
    assert len(recorded) == 1  # what Metaflow's own `card create` saved for the real run

    seen = []
    for name, html in (("devd", result.cards[0]), ("metaflow", recorded[0].get())):
        watched = Watched(browser)
        watched.page.goto(card_file(tmp_path, f"error-{name}", html))
        seen.append(watched.page.locator("body").inner_text())
        if name == "devd":
            watched.shot(tmp_path, "card-error")
        watched.close()
    for text in seen:
        assert "Card Render Failed With Error" in text
        assert "Card of type test_error_card is unable to be rendered" in text
        assert "Exception: Unknown Things Happened" in text


def test_preview_shows_cards_panels_and_the_diff_with_the_recorded_task(
        in_project: Path, browser: Any, tmp_path: Path) -> None:
    with Session(FLOW) as session:
        result = session.spin("report", artifacts={"base": 21}, diff=True)
    assert result.ok, result.error and result.error.traceback
    assert result.recorded_task and result.recorded_task.startswith("CardFlow/")
    html = render_preview(result, recorded=recorded_hashes(result))
    watched = Watched(browser)
    page = watched.page
    page.goto(card_file(tmp_path, "preview-report", html))

    assert page.locator("h1").inner_text() == "CardFlow/report"
    assert page.locator("#status").inner_text() == "succeeded"
    diff = {row.get_attribute("data-artifact"): row.locator("td.diff").inner_text()
            for row in page.locator("#artifacts tbody tr").all()}
    assert diff["total"] == "changed"  # 42, where the recorded task had 8
    assert diff["base"] == "changed"  # the override
    assert diff["label"] == "unchanged"
    assert diff["bonus"] == "new"  # only set when base > 10
    total_row = page.locator('#artifacts tr[data-artifact="total"]').inner_text()
    assert "42" in total_row
    assert "report total 42" in page.locator("#stdout").inner_text()

    frames = page.locator("iframe.card")
    assert frames.count() == 2
    assert all(f.get_attribute("sandbox") == "allow-scripts" for f in frames.all())
    report = page.frame_locator('iframe[data-card-id="report"]')
    assert report.locator("h1", has_text="Quarterly report").is_visible()
    assert report.locator("progress").get_attribute("value") == "7"
    assert report.locator("td", has_text="42").count() == 1
    # The frame is as tall as its card's content (no scrolling inside a fixed box), and
    # stays so: Metaflow's 100vh layout must not make it grow at every resize.
    height = "document.querySelector('iframe[data-card-id=\"report\"]').offsetHeight"
    page.wait_for_function(f"() => {height} > 600")
    first = page.evaluate(height)
    page.wait_for_timeout(600)
    assert page.evaluate(height) == first < 1500
    watched.shot(tmp_path, "preview-report")
    assert watched.errors == [] and watched.remote_requests() == []
    watched.close()


def test_preview_of_a_failed_spin_shows_the_error_and_its_traceback(
        in_project: Path, browser: Any, tmp_path: Path) -> None:
    with Session(FLOW) as session:
        result = session.spin("broken", artifacts={"total": "many"}, diff=True)
    assert not result.ok
    watched = Watched(browser, height=700)
    page = watched.page
    page.goto(card_file(tmp_path, "preview-failed",
                        render_preview(result, recorded=recorded_hashes(result))))
    assert page.locator("#status").inner_text() == "failed"
    panel = page.locator("#error")
    assert panel.is_visible()
    assert "TypeError" in panel.locator("h2").inner_text()
    assert f"{FLOW}:" in panel.locator(".where").inner_text()
    trace = panel.locator(".traceback").inner_text()
    assert "self.after = self.total + 1" in trace and "Traceback" in trace
    watched.shot(tmp_path, "preview-failed")
    watched.close()


class LiveHarness:
    """Loopback-only HTTP server: the preview page at / and its update stream at /events.

    Stands in for an editor host: what the daemon sends as ``devd/cardUpdated`` goes to the
    open page as server-sent events. Lives at most ``lifetime`` seconds.
    """

    def __init__(self, lifetime: float = 60.0) -> None:
        self.page_html = ""
        self.updates: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.deadline = time.monotonic() + lifetime
        harness = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # http.server's name
                if self.path == "/":
                    body = harness.page_html.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/events":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()
                    self.wfile.write(b": connected\n\n")
                    self.wfile.flush()
                    while time.monotonic() < harness.deadline:
                        try:
                            card = harness.updates.get(timeout=0.2)
                        except queue.Empty:
                            continue
                        if card is None:
                            break
                        data = json.dumps(card)
                        self.wfile.write(f"event: cardUpdated\ndata: {data}\n\n".encode())
                        self.wfile.flush()
                else:
                    self.send_error(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.updates.put(None)
        self.server.shutdown()
        self.server.server_close()


def test_live_card_updates_patch_an_open_preview_without_reloading(
        in_project: Path, browser: Any, tmp_path: Path) -> None:
    harness = LiveHarness()
    try:
        with Session(FLOW) as session:
            first = session.spin("live")  # the page the user has open: the last spin
            assert first.ok and [c["id"] for c in first.card_info] == ["live"]
            harness.page_html = render_preview(first, events_url=harness.url + "/events")

            watched = Watched(browser, width=1000, height=500)
            page = watched.page
            navigations: list[str] = []
            page.on("framenavigated",
                    lambda f: navigations.append(f.url) if f != page.main_frame else None)
            page.goto(harness.url + "/")
            card = page.frame_locator('iframe[data-card-id="live"]')
            assert card.locator("text=Tick 5 of 5").is_visible()
            page.evaluate("window.devdTestMark = 'same page'")
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            scrolled = page.evaluate("window.scrollY")
            assert scrolled > 100
            navigations.clear()

            sent: list[dict[str, Any]] = []

            def forward(entry: dict[str, Any]) -> None:
                payload = update_payload(entry)
                sent.append(payload)
                harness.updates.put(payload)

            result = session.spin("live", artifacts={"pause": 0.3}, on_card=forward)
        assert result.ok
        assert [p["mode"] for p in sent][:2] == ["render_runtime", "refresh"]
        assert sent[0].get("html") and not sent[1].get("html")
        assert sent[-1]["components"] and all(not p.get("html") for p in sent[1:])

        card.locator("text=Tick 5 of 5").wait_for(timeout=15000)
        assert card.locator("progress").get_attribute("value") == "5"
        assert "5/5" in card.locator("body").inner_text()
        # The same page, at the same place; the card frame loaded once (the runtime
        # render), and the five refreshes were applied in place.
        assert page.evaluate("window.devdTestMark") == "same page"
        assert abs(page.evaluate("window.scrollY") - scrolled) < 5
        assert len(navigations) == 1
        assert page.evaluate("document.body.dataset.liveUpdates") == str(len(sent))
        watched.shot(tmp_path, "preview-live-scrolled", full_page=False)
        live_card = tmp_path / "preview-live-card.png"
        page.locator('iframe[data-card-id="live"]').screenshot(path=str(live_card))
        shutil.copy(live_card, SHOTS / live_card.name)
        # That page rendered the last spin without reading the recorded task's hashes.
        assert set(page.locator("#artifacts td.diff").all_inner_texts()) == {"not compared"}
        assert watched.errors == [] and watched.remote_requests(harness.url) == []
        watched.close()
    finally:
        harness.close()


def test_card_refreshes_reach_the_caller_while_the_step_runs(in_project: Path) -> None:
    arrivals: list[float] = []
    with Session(FLOW) as session:
        result = session.spin("live", artifacts={"pause": 0.4},
                              on_card=lambda entry: arrivals.append(time.perf_counter()))
        finished = time.perf_counter()
    assert result.ok and len(arrivals) >= 5
    assert finished - arrivals[0] > 1.0  # five pauses of 0.4 s follow the first refresh


def devd_cli(*args: str, cwd: Path, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_devd_card_writes_the_preview_of_a_spin_and_of_a_recorded_task(
        in_project: Path, browser: Any, tmp_path: Path) -> None:
    from metaflow import Flow, namespace

    out = tmp_path / "spin.html"
    proc = devd_cli("card", FLOW, "report", "-o", str(out), cwd=in_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    watched = Watched(browser)
    watched.page.goto(out.as_uri())
    assert watched.page.locator("#status").inner_text() == "succeeded"
    assert watched.page.locator("iframe.card").count() == 2
    watched.close()

    namespace(None)
    task = Flow("CardFlow").latest_run["report"].task
    out = tmp_path / "recorded.html"
    proc = devd_cli("card", FLOW, task.pathspec, "--recorded", "-o", str(out), cwd=in_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    watched = Watched(browser)
    page = watched.page
    page.goto(out.as_uri())
    assert page.locator("iframe.card").count() == 2  # the cards Metaflow stored
    report = page.frame_locator('iframe[data-card-id="report"]')
    assert report.locator("h1", has_text="Quarterly report").is_visible()
    assert report.locator("td", has_text="8").count() == 1  # the recorded total
    assert "report total 8" in page.locator("#stdout").inner_text()
    assert page.locator('#artifacts tr[data-artifact="total"]').inner_text().split() == \
        ["total", "int", "8"]  # the recorded task itself: no diff column
    watched.shot(tmp_path, "preview-recorded")
    watched.close()

    proc = devd_cli("card", FLOW, "report", "--recorded", cwd=in_project)
    assert proc.returncode == 2 and "Flow/RUN/STEP/TASK" in proc.stderr


EXTENSION_CARD = """
from metaflow.plugins.cards.card_modules.card import MetaflowCard


class ShoutCard(MetaflowCard):
    type = "devd_shout"

    def __init__(self, options=None, components=None, graph=None, flow=None, **kwargs):
        self._components = components or []

    def render(self, task):
        return ("<!DOCTYPE html><html><body><h1>SHOUT %s</h1><p id='after'>after=%s</p>"
                "</body></html>" % (task.pathspec, task["after"].data))


CARDS = [ShoutCard]
"""


def test_card_types_of_installed_metaflow_extensions_render(
        in_project: Path, browser: Any, tmp_path: Path) -> None:
    from metaflow import Flow, namespace
    from metaflow.cards import get_cards

    # Not installed in this process (nor in the real run): Metaflow's "not found" card.
    result = devd.spin(FLOW, "end")
    namespace(None)
    stored = get_cards(Flow("CardFlow").latest_run["end"].task)[0].get()
    for name, html in (("devd", result.cards[0]), ("metaflow", stored)):
        watched = Watched(browser)
        watched.page.goto(card_file(tmp_path, f"not-found-{name}", html))
        text = watched.page.locator("body").inner_text()
        assert "MetaflowCard named devd_shout not found" in text, name
        watched.close()

    # A Metaflow extension on PYTHONPATH registers the card type; `devd card` renders it.
    package = tmp_path / "ext" / "metaflow_extensions" / "devd_test" / "plugins" / "cards"
    (package / "devd_shout").mkdir(parents=True)
    (package / "devd_shout" / "__init__.py").write_text(EXTENSION_CARD)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "ext")}
    out = tmp_path / "shout.html"
    proc = devd_cli("card", FLOW, "end", "-o", str(out), cwd=in_project, env=env)
    assert proc.returncode == 0, proc.stderr
    watched = Watched(browser)
    watched.page.goto(out.as_uri())
    shout = watched.page.frame_locator('iframe[data-card-type="devd_shout"]')
    assert shout.locator("h1").inner_text().startswith("SHOUT CardFlow/")
    assert shout.locator("#after").inner_text() == "after=9"
    watched.close()


def test_live_bridge_goes_before_the_last_body_close_in_any_case() -> None:
    from devd.common.cardpage import LIVE_BRIDGE, with_live_bridge

    script = "<script>var s = '</body>';</script>"
    long_tail = "x" * 10_000
    for page in (f"<html><body>{script}</BODY></html>",
                 f"<html><body>{script}</body>{long_tail}</html>",
                 "<html><body>no close"):
        out = with_live_bridge(page)
        assert out.count(LIVE_BRIDGE) == 1 and with_live_bridge(out) == out
        if "no close" in page:
            assert out.endswith(LIVE_BRIDGE)
        else:
            assert out.index(LIVE_BRIDGE) > out.index(script)  # not inside the script
            assert out[out.index(LIVE_BRIDGE) + len(LIVE_BRIDGE):].lower().startswith("</body>")


def test_card_assets_are_read_once_and_only_metaflows_own(tmp_path: Path) -> None:
    from metaflow.plugins.cards.card_modules import basic

    from devd.common.cardpage import cache_card_assets

    cache_card_assets()
    first = basic.read_file(basic.JS_PATH)
    assert basic.read_file(basic.JS_PATH) is first  # the cached text itself
    other = tmp_path / "template.html"
    other.write_text("one")
    assert basic.read_file(str(other)) == "one"
    other.write_text("two")
    assert basic.read_file(str(other)) == "two"  # a user's own template is read anew


# --- The VS Code card pane: a webview page with a nonce, updated in place --------------------

NONCE = "dGVzdC1ub25jZS0xMjM0NTY3OA=="
CSP_SOURCE = "https://*.vscode-cdn.net"
WEBVIEW_CSP = (f"default-src 'none'; img-src data: {CSP_SOURCE}; style-src 'unsafe-inline'; "
               f"script-src 'nonce-{NONCE}' 'unsafe-eval'; font-src data:; "
               "frame-src about:")
# A card whose own inline script writes the text a person sees.
# (Its second script has a nonce of its own, which devd replaces: Chromium honours no
# nonce on an element with two nonce attributes.)
SCRIPTED_CARD = ("<!DOCTYPE html><html><body><p id='set'>written by the page</p>"
                 "<p id='foreign'>not run</p><p id='marker'></p>"
                 "<script>document.getElementById('set').textContent = "
                 "'written by the card script';</script>"
                 "<script nonce='Zm9yZWlnbi1ub25jZQ=='>document.getElementById('foreign')"
                 ".textContent = 'run';</script></body></html>")


def with_card(result: Any, html: str, info: dict[str, Any]) -> Any:
    """``result`` with one more card (its document as devd renders it: with the bridge)."""
    import dataclasses

    from devd.common.cardpage import with_live_bridge

    return dataclasses.replace(result, cards=[*result.cards, with_live_bridge(html)],
                               card_info=[*result.card_info, info])


def inject(page_html: str, card_marker: str, script: str) -> str:
    """A script without the nonce, put where the page's CSP must stop it: before the page's
    ``</body>`` and, escaped as jinja escapes srcdoc, into the card holding ``card_marker``."""
    from markupsafe import escape

    escaped_marker = str(escape(card_marker))
    assert page_html.count(escaped_marker) == 1
    page_html = page_html.replace(escaped_marker, str(escape(script)))
    head, tail = page_html.rsplit("</body>", 1)
    return head + "<script>window.devdInjected = 'ran';</script></body>" + tail


def test_with_nonce_puts_the_nonce_on_every_script_tag_and_only_there() -> None:
    from devd.core.preview import WebviewOptionsError, check_webview, with_nonce

    mine = f'nonce="{NONCE}"'
    page = ("<!-- <script>old</script> --><SCRIPT>var s = '<script>x</script';</SCRIPT>"
            "<script nonce='theirs' data-x=\"a>b\" NONCE=again nonce>y</script>"
            "<script src=data:,1></script><scripted>")
    out = with_nonce(page, NONCE)
    assert out == ("<!-- <script>old</script> -->"
                   f"<SCRIPT {mine}>var s = '<script>x</script';</SCRIPT>"
                   f"<script {mine} data-x=\"a>b\">y</script>"
                   f"<script {mine} src=data:,1></script><scripted>")
    assert with_nonce(out, NONCE) == out
    for bad in ("short", "x" * 257, 'a"' * 10, "spaces are not allowed", None, 12345678901234567):
        with pytest.raises(WebviewOptionsError):
            check_webview(bad)
    for bad_source in ("https://x; script-src *", 'https://x"', "a,b", ""):
        with pytest.raises(WebviewOptionsError):
            check_webview(NONCE, bad_source)
    check_webview(NONCE, "https://*.vscode-cdn.net 'self'")


def script_hash(text: str) -> str:
    import base64
    import hashlib

    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def blocked_scripts(console: list[str]) -> set[str]:
    """The hashes of the inline scripts Chromium's CSP violation messages name (a violation
    in a card frame is sometimes logged twice: a set)."""
    import re

    return {m.group(1) for text in console if "Content Security Policy" in text
            for m in [re.search(r"'(sha256-[A-Za-z0-9+/=]+)'", text)] if m}


def test_a_webview_preview_runs_only_scripts_carrying_its_nonce_cards_included(
        in_project: Path, browser: Any, tmp_path: Path) -> None:
    with Session(FLOW) as session:
        result = session.spin("report")
    assert result.ok
    result = with_card(result, SCRIPTED_CARD, {"id": "scripted", "type": "blank", "uuid": "s1"})
    card_script = "<script>document.body.dataset.injected = 'ran';</script>"
    seen: dict[str, dict[str, Any]] = {}
    for flavour, options in (("webview", {"nonce": NONCE, "csp_source": CSP_SOURCE}),
                             ("browser", {})):
        html = render_preview(result, **options)
        if flavour == "webview":
            assert f'<meta http-equiv="Content-Security-Policy" content="{WEBVIEW_CSP}">' in html
            assert "'unsafe-inline' 'unsafe-eval'" not in html
        watched = Watched(browser)
        page = watched.page
        console: list[str] = []
        page.on("console", lambda m, c=console: c.append(m.text))
        page.goto(card_file(tmp_path, f"preview-{flavour}",
                            inject(html, "<p id='marker'></p>", card_script)))
        report = page.frame_locator('iframe[data-card-id="report"]')
        # Metaflow's own card scripts ran: its Svelte app writes the report from its data.
        report.locator("h1", has_text="Quarterly report").wait_for()
        page.wait_for_function("() => document.querySelector("
                               "'iframe[data-card-id=\"report\"]').offsetHeight > 600")
        scripted = page.frame_locator('iframe[data-card-id="scripted"]')
        scripted.locator("#set", has_text="written by the card script").wait_for()
        scripted.locator("#foreign", has_text="run").wait_for()
        page.wait_for_timeout(300)
        page.evaluate("""() => { const s = document.createElement('script');
                          s.textContent = 'window.devdDynamic = 1';
                          document.body.appendChild(s); }""")
        scripted_frame = next(f for f in page.frames
                              if f != page.main_frame and f.frame_element()
                              .get_attribute("data-card-id") == "scripted")
        seen[flavour] = {
            "page script": page.evaluate("typeof window.devdApplyCardUpdate"),
            "injected page script": page.evaluate("window.devdInjected || null"),
            "dynamic script": page.evaluate("window.devdDynamic || null"),
            "injected card script": scripted_frame.evaluate(
                "document.body.dataset.injected || null"),
        }
        page.wait_for_timeout(300)  # console messages arrive asynchronously
        seen[flavour]["blocked"] = blocked_scripts(console)
        if flavour == "webview":
            watched.shot(tmp_path, "preview-webview-nonce")
        assert watched.errors == [] and watched.remote_requests() == []
        watched.close()
    # In the webview flavour only scripts with the nonce run, inside card frames too: a
    # srcdoc frame inherits the page's policy (Chromium), a sandboxed one included.
    assert seen["webview"] == {
        "page script": "function", "injected page script": None, "dynamic script": None,
        "injected card script": None,
        "blocked": {script_hash(s) for s in ("window.devdInjected = 'ran';",
                                              "document.body.dataset.injected = 'ran';",
                                              "window.devdDynamic = 1")}}
    # The same injections run in the ordinary page: the policy is what stopped them.
    assert seen["browser"] == {"page script": "function", "injected page script": "ran",
                               "dynamic script": 1, "injected card script": "ran",
                               "blocked": set()}


HOST_PAGE = """<!DOCTYPE html><html><body style="margin:0">
<script>
window.received = []; window.acquired = 0; window.state = null;
addEventListener("message", (e) => {
  const d = e.data || {};
  if (d.devdHost === "postMessage") { received.push(d.message); }
  else if (d.devdHost === "setState") { state = d.state; }
  else if (d.devdHost === "acquired") { acquired += 1; }
});
window.post = (m) => document.getElementById("webview").contentWindow.postMessage(m, "*");
</script>
<iframe id="webview" name="devd-webview" src="%s" style="border:0;width:100vw;height:100vh">
</iframe>
</body></html>"""

# What VS Code gives a webview's page (its pre/index.html, before the page's own scripts):
# acquireVsCodeApi (once), whose postMessage and setState reach the host frame (here: the
# page around the frame), getState the saved state; and then, as VS Code does,
# window.parent = window.top = window: a host's message comes from a window that is not
# `window.parent`, from the page's own origin.
WEBVIEW_API = """(() => {
  if (window.name !== "devd-webview") { return; }
  const realParent = window.parent;
  const host = (message) => realParent.postMessage(message, "*");
  let acquired = false;
  let state = %s;
  window.acquireVsCodeApi = () => {
    if (acquired) { throw new Error("An instance of the VS Code API has already been acquired"); }
    acquired = true;
    host({devdHost: "acquired"});
    return {
      postMessage: (message) => host({devdHost: "postMessage", message}),
      setState: (s) => { state = s; host({devdHost: "setState", state: s}); },
      getState: () => state,
    };
  };
  window.parent = window;
  window.top = window;
  window.frameElement = null;
})();"""


class StaticPages:
    """Loopback-only HTTP server of a few pages: host and page share an origin, as VS Code's
    webview host and content frame do."""

    def __init__(self, pages: dict[str, str]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # http.server's name
                body = pages.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebviewHost:
    """A page standing in for VS Code: the preview in a frame named like a webview, with the
    webview API; messages both ways go through postMessage, as in VS Code."""

    def __init__(self, browser: Any, preview_html: str,
                 state: dict[str, Any] | None = None, width: int = 1100,
                 height: int = 700) -> None:
        self.watched = Watched(browser, width=width, height=height)
        self.page = self.watched.page
        self.page.add_init_script(WEBVIEW_API % json.dumps(state))
        self.pages = StaticPages({"/": HOST_PAGE % "/preview.html",
                                  "/preview.html": preview_html})
        self.page.goto(self.pages.url + "/")
        self.page.wait_for_function("() => window.received.some(m => m.type === 'devd/ready')")
        self.view = self.page.frame(name="devd-webview")
        self.locator = self.page.frame_locator("#webview")

    def post(self, message: dict[str, Any]) -> None:
        self.page.evaluate("m => window.post(m)", message)

    def card_frames(self) -> dict[str, Any]:
        """The webview's card frames by @card id (else type)."""
        found = {}
        for child in self.view.child_frames:
            element = child.frame_element()
            key = element.get_attribute("data-card-id") or element.get_attribute(
                "data-card-type")
            found[key] = child
        return found

    def received(self) -> list[dict[str, Any]]:
        return self.page.evaluate("window.received")

    def close(self) -> None:
        self.watched.close()
        self.pages.close()


def test_a_new_preview_replaces_the_open_one_in_place(in_project: Path, browser: Any,
                                                      tmp_path: Path) -> None:
    import dataclasses

    with Session(FLOW) as session:
        first = session.spin("report", artifacts={"base": 21}, diff=True)
        second = session.spin("report", artifacts={"base": 30}, diff=True, persist=True)
    assert first.ok and second.ok and second.pathspec
    assert [c["type"] for c in second.card_info] == ["default", "blank"]
    # Every spin's card differs (its run id); this default card is the first spin's, so
    # that one frame has nothing new to load.
    second = dataclasses.replace(second, cards=[first.cards[0], second.cards[1]])
    old = render_preview(first, recorded=recorded_hashes(first), nonce=NONCE)
    new = render_preview(second, recorded=recorded_hashes(second), nonce=NONCE)

    host = WebviewHost(browser, old)
    view, locate = host.view, host.locator
    report = locate.frame_locator('iframe[data-card-id="report"]')
    report.locator("td", has_text="42").wait_for()
    view.wait_for_function("() => document.querySelector("
                           "'iframe[data-card-id=\"report\"]').offsetHeight > 600")
    view.evaluate("window.devdTestMark = 'same page'")
    for frame in host.card_frames().values():
        frame.evaluate("window.devdFrameMark = 'same document'")
    view.evaluate("window.scrollTo(0, 900)")
    scrolled = view.evaluate("window.scrollY")
    assert scrolled == 900
    assert "persisted as" not in locate.locator("#head").inner_text()

    host.post({"type": "devd/preview", "html": new})
    view.wait_for_function("() => document.body.dataset.previewUpdates === '1'")
    report.locator("td", has_text="60").wait_for()  # the report card of the new spin
    assert view.evaluate("window.devdTestMark") == "same page"
    assert abs(view.evaluate("window.scrollY") - scrolled) < 5
    assert f"persisted as {second.pathspec}" in locate.locator("#head").inner_text()
    assert "60" in locate.locator('#artifacts tr[data-artifact="total"]').inner_text()
    assert "report total 60" in locate.locator("#stdout").inner_text()
    frames = host.card_frames()
    assert set(frames) == {"default", "report"} and locate.locator("iframe.card").count() == 2
    marks = {key: frame.evaluate("window.devdFrameMark || null")
             for key, frame in frames.items()}
    # The changed card took the new spin's data in place: no new document, no renderer
    # run again; the unchanged one was not touched at all.
    assert marks == {"default": "same document", "report": "same document"}
    assert view.evaluate("document.body.dataset.cardSwaps") == "1"
    assert frames["report"].evaluate("document.title") == second.pathspec
    text = frames["report"].evaluate("document.body.innerText")  # every component anew
    assert "Total is 60" in text and "Total is 42" not in text and "42" not in text.split()
    assert abs(view.evaluate("window.scrollY") - scrolled) < 5

    # Data the card cannot take (not the renderer's base64 JSON): the frame loads the
    # document instead, as for any other change.
    bad = re.sub(r'(window\.__MF_DATA__\["[^"]+"\]\s*=\s*")[^"]*"', r'\1!!not data!!"',
                 second.cards[1], count=1)
    assert bad != second.cards[1]
    host.post({"type": "devd/cardUpdated", "card": {
        "uuid": second.card_info[1].get("uuid"), "id": "report", "type": "blank",
        "mode": "render_runtime", "components": {}, "html": bad}})
    view.wait_for_function("() => document.body.dataset.cardSwaps === '2'")
    report.locator(".card_app").wait_for(state="attached")
    view.wait_for_function(
        "() => { const f = document.querySelector('iframe[data-card-id=\"report\"]');"
        " return !f.devdLoading && f.devdReady; }")
    assert frames["report"].evaluate("window.devdFrameMark || null") is None  # reloaded

    # A card cannot pose as the host (its sandboxed frame's origin is "null").
    frames["report"].evaluate(
        "() => window.parent.postMessage({type: 'devd/spinStatus', text: 'spoofed'}, '*')")
    view.wait_for_timeout(300)
    assert locate.locator("#status").inner_text() == "succeeded"

    # Live updates still reach the page: the status badge (a new element now), and a card's
    # new document, which the page gives its nonce before loading it.
    host.post({"type": "devd/spinStatus", "text": "spinning…", "ok": True})
    locate.locator("#status", has_text="spinning…").wait_for()
    host.post({"type": "devd/cardUpdated", "card": {
        "uuid": "new", "id": "report", "type": "blank", "mode": "render_runtime",
        "components": {}, "html": SCRIPTED_CARD}})
    report.locator("#set", has_text="written by the card script").wait_for()
    report.locator("#foreign", has_text="run").wait_for()
    assert view.evaluate("document.body.dataset.liveUpdates") == "2"

    # The same spin again, rendered for another nonce: the unchanged card is not reloaded
    # and the replaced one runs its scripts under the page's own nonce.
    for frame in host.card_frames().values():
        frame.evaluate("window.devdFrameMark = 'again'")
    host.post({"type": "devd/preview", "html": render_preview(
        second, recorded=recorded_hashes(second), nonce="b3RoZXItbm9uY2UtOTg3NjU0MzI=")})
    view.wait_for_function("() => document.body.dataset.previewUpdates === '2'")
    report.locator("td", has_text="60").wait_for()
    marks = {key: frame.evaluate("window.devdFrameMark || null")
             for key, frame in host.card_frames().items()}
    assert marks == {"default": "again", "report": None}  # the live document was replaced
    host.watched.shot(tmp_path, "webview-updated", full_page=False)
    assert host.watched.errors == [] and host.watched.remote_requests(host.pages.url) == []
    host.close()


def test_a_failed_spin_keeps_the_previous_cards_greyed_until_a_success(
        in_project: Path, browser: Any, tmp_path: Path) -> None:
    with Session(FLOW) as session:
        good = session.spin("report", artifacts={"base": 21})
        bad = session.spin("report", artifacts={"base": "x"})  # TypeError before any card
        fixed = session.spin("report", artifacts={"base": 30})
        start = session.spin("start")
    assert good.ok and not bad.ok and fixed.ok and bad.cards == [] and start.cards == []

    host = WebviewHost(browser, render_preview(good, nonce=NONCE))
    view, locate = host.view, host.locator
    assert locate.locator("#error").count() == 0
    host.post({"type": "devd/preview", "html": render_preview(bad, nonce=NONCE)})
    view.wait_for_function("() => document.body.dataset.previewUpdates === '1'")
    assert locate.locator("#status").inner_text() == "failed"
    assert "TypeError" in locate.locator("#error h2").inner_text()  # a section that appeared
    boxes = locate.locator("#cards .card-frame")
    assert boxes.count() == 2
    for box in boxes.all():
        assert "previous" in box.get_attribute("class")
        assert box.locator(".previous-label").inner_text() == \
            "card from the previous spin — this spin failed"
        opacity = box.locator("iframe.card").evaluate("f => getComputedStyle(f).opacity")
        assert float(opacity) < 0.5
    assert locate.locator("#cards .empty").count() == 0
    host.watched.shot(tmp_path, "webview-failed-previous-cards", full_page=False)

    host.post({"type": "devd/preview", "html": render_preview(fixed, nonce=NONCE)})
    view.wait_for_function("() => document.body.dataset.previewUpdates === '2'")
    assert locate.locator("#status").inner_text() == "succeeded"
    assert locate.locator("#error").count() == 0  # and a section that went away
    assert locate.locator(".card-frame.previous, .previous-label").count() == 0
    locate.frame_locator('iframe[data-card-id="report"]').locator(
        "td", has_text="60").wait_for()

    # A card that appears gets a frame of its own; a step without cards has none.
    more = with_card(fixed, SCRIPTED_CARD, {"id": "scripted", "type": "blank", "uuid": "s2"})
    host.post({"type": "devd/preview", "html": render_preview(more, nonce=NONCE)})
    locate.frame_locator('iframe[data-card-id="scripted"]').locator(
        "#set", has_text="written by the card script").wait_for()
    assert [f.get_attribute("data-card-id") or f.get_attribute("data-card-type")
            for f in locate.locator("iframe.card").all()] == ["default", "report", "scripted"]
    host.post({"type": "devd/preview", "html": render_preview(start, nonce=NONCE)})
    view.wait_for_function("() => document.body.dataset.previewUpdates === '4'")
    assert locate.locator("iframe.card").count() == 0
    assert locate.locator("#cards .empty").is_visible()
    assert locate.locator("h1").inner_text() == "CardFlow/start"
    assert host.watched.errors == []
    host.close()


def test_the_webview_page_opens_the_error_line_says_ready_and_keeps_its_scroll(
        in_project: Path, browser: Any, tmp_path: Path) -> None:
    with Session(FLOW) as session:
        bad = session.spin("report", artifacts={"base": "x"})
        good = session.spin("report", artifacts={"base": 21})
    error = bad.error
    assert error is not None and error.filename.endswith(FLOW) and error.line
    host = WebviewHost(browser, render_preview(bad, nonce=NONCE))
    locate = host.locator
    assert host.received() == [{"type": "devd/ready"}]
    assert host.page.evaluate("window.acquired") == 1
    where = locate.locator("#error .where a.open-file")
    assert where.inner_text() == f"{error.file}:{error.line}"
    where.click()
    host.page.wait_for_function("() => window.received.length === 2")
    assert host.received()[1] == {"type": "devd/openFile", "file": error.file,
                                  "line": error.line}
    # The traceback's frames link to their lines too.
    frame_link = locate.locator(f'#error .traceback a.open-file[data-file="{error.file}"]')
    frame_link.click()
    host.page.wait_for_function("() => window.received.length === 3")
    assert host.received()[2] == {"type": "devd/openFile", "file": error.file,
                                  "line": error.line}
    host.close()

    # The scroll position goes to the webview's state, and comes back when VS Code
    # reloads a hidden webview (same html, saved state); the page says ready again.
    host = WebviewHost(browser, render_preview(good, nonce=NONCE))
    host.view.wait_for_function("() => document.documentElement.scrollHeight > 1800")
    host.view.evaluate("window.scrollTo(0, 1000)")
    host.page.wait_for_function("() => window.state && window.state.scrollY === 1000")
    state = host.page.evaluate("window.state")
    host.close()
    host = WebviewHost(browser, render_preview(good, nonce=NONCE), state=state)
    host.view.wait_for_function("() => window.scrollY === 1000")
    assert host.received() == [{"type": "devd/ready"}]
    assert host.watched.errors == []
    host.close()


def test_a_pane_gets_metaflows_card_renderer_once(in_project: Path, browser: Any) -> None:
    """A webview preview marks big card scripts; a pane that holds one gets later cards
    without it (~1 MB less per spin) and the page puts it back before the card loads."""
    from devd.core.preview import ASSET_MIN_CHARS, CardAssets

    with Session(FLOW) as session:
        first = session.spin("report", artifacts={"base": 21}, diff=True)
        second = session.spin("report", artifacts={"base": 30}, diff=True)
    assert first.ok and second.ok
    sent = CardAssets()
    old = render_preview(first, recorded=recorded_hashes(first), nonce=NONCE, assets=sent)
    assert len(sent.sent) == 1  # Metaflow's card renderer, in the default card
    digest = next(iter(sent.sent))
    assert old.count(f"data-devd-asset=&#34;{digest}&#34;") == 2  # both cards use it
    held = CardAssets(sent.sent)
    new = render_preview(second, recorded=recorded_hashes(second), nonce=NONCE, assets=held)
    assert held.sent == set() and len(old) - len(new) > 2 * ASSET_MIN_CHARS

    host = WebviewHost(browser, old)
    view, locate = host.view, host.locator
    default = locate.frame_locator('iframe[data-card-type="default"]')
    default.locator("text=Task Metadata").first.wait_for()
    host.post({"type": "devd/preview", "html": new})
    view.wait_for_function("() => document.body.dataset.previewUpdates === '1'")
    run_id = second.origin_run_id  # the default card of the new spin, drawn by the renderer
    default.locator("text=Task Metadata").first.wait_for()
    frame = host.card_frames()["default"]
    frame.wait_for_function("() => document.body.innerText.includes('report')")
    assert run_id
    assert frame.evaluate("() => document.querySelectorAll('script[data-devd-asset]')"
                          "[0].textContent.length") > ASSET_MIN_CHARS
    assert host.watched.errors == []
    host.close()


def test_the_inline_page_script_never_closes_its_own_tag() -> None:
    """cards/preview.js is inlined into a <script>: the text "</script" anywhere in it (a
    comment, a string) would end the script there and break the whole page."""
    text = (Path(__file__).resolve().parent.parent / "cards" / "preview.js").read_text()
    assert "</script" not in text.lower()


# A card that tries WebRTC every way a card script can: directly, through a nested
# same-origin frame's window, and from a nested srcdoc or data: document of its own.
RTC_CALL = ("try {{ var pc = new {ctor}({{iceServers: [{{urls: 'stun:127.0.0.1:{port}'}}]}});"
            " pc.createDataChannel('x'); pc.createOffer().then(function (o) {{"
            " return pc.setLocalDescription(o); }}); {mark} }} catch (e) {{ }}")


def webrtc_card(port: int) -> str:
    direct = RTC_CALL.format(ctor="RTCPeerConnection", port=port,
                             mark="document.getElementById('direct').textContent='open';")
    inner = json.dumps("<script>" + RTC_CALL.format(ctor="RTCPeerConnection", port=port,
                                                     mark="") + "</script>").replace("</", "<\\/")
    nested = ("var f = document.createElement('iframe'); document.body.appendChild(f);"
              + RTC_CALL.format(ctor="f.contentWindow.RTCPeerConnection", port=port, mark="")
              + "var g = document.createElement('iframe'); g.srcdoc = " + inner
              + "; document.body.appendChild(g);"
              "var h = document.createElement('iframe'); h.src = 'data:text/html,' + "
              "encodeURIComponent(" + inner + "); document.body.appendChild(h);"
              "document.getElementById('tried').textContent = 'tried';")
    return ("<!DOCTYPE html><html><head><title>rtc</title></head><body>"
            "<p id='tried'>no</p><p id='direct'>closed</p>"
            f"<script>{direct}</script><script>{nested}</script></body></html>")


class StunTrap:
    """Loopback UDP ports a card's WebRTC would send STUN packets to, one per page under test,
    watched together: the pages are opened at once and waited for once."""

    def __init__(self, *names: str) -> None:
        import socket

        self.socks = {name: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for name in names}
        for sock in self.socks.values():
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)

    def port(self, name: str) -> int:
        return self.socks[name].getsockname()[1]

    def packets(self, seconds: float, *, until_any: bool = False) -> dict[str, int]:
        """Packets each port got within ``seconds`` (sooner with ``until_any``: once one did)."""
        import select

        got = dict.fromkeys(self.socks, 0)
        by_sock = {sock: name for name, sock in self.socks.items()}
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(by_sock), [], [], left)
            for sock in ready:
                with contextlib.suppress(BlockingIOError):
                    while sock.recvfrom(4096):
                        got[by_sock[sock]] += 1
            if until_any and any(got.values()):
                break
        return got

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()


FLAVOURS = (("browser", {}), ("webview", {"nonce": NONCE, "csp_source": CSP_SOURCE}))


def test_card_frames_cannot_open_webrtc_in_either_flavour(
        in_project: Path, browser: Any, tmp_path: Path) -> None:
    """A card sent STUN packets out despite the page's CSP: Chromium applies no CSP to
    WebRTC. The STUN servers are loopback UDP ports this test listens on."""
    trap = StunTrap("bare", *(flavour for flavour, _ in FLAVOURS))
    try:
        # The probe works: the same card opened bare in Chromium reaches the port.
        bare = Watched(browser)
        bare.page.goto(card_file(tmp_path, "rtc-bare", webrtc_card(trap.port("bare"))))
        assert trap.packets(5, until_any=True)["bare"] > 0, "no STUN packet from an unguarded card"
        bare.close()
        with Session(FLOW) as session:
            result = session.spin("report")
        pages = []
        for flavour, options in FLAVOURS:
            card = webrtc_card(trap.port(flavour))
            shown = with_card(result, card, {"id": "rtc", "type": "blank", "uuid": "r1"})
            watched = Watched(browser)
            watched.page.goto(card_file(tmp_path, f"rtc-{flavour}",
                                        render_preview(shown, **options)))
            pages.append((flavour, watched))
            frame = watched.page.frame_locator('iframe[data-card-id="rtc"]')
            frame.locator("#tried", has_text="tried").wait_for()  # the card's scripts ran
            report = watched.page.frame_locator('iframe[data-card-id="report"]')
            report.locator("h1", has_text="Quarterly report").wait_for()  # cards still work
            assert frame.locator("#direct").inner_text() == "closed", flavour
        got = trap.packets(4)
        assert not got["browser"] and not got["webview"], f"a card opened WebRTC: {got}"
        for _, watched in pages:
            watched.close()
    finally:
        trap.close()


def test_the_diff_shows_both_values_and_the_page_leads_with_them(
        in_project: Path, browser: Any, tmp_path: Path) -> None:
    """A changed artifact shows the recorded value and the new one (`8 → 42`), big values
    by shape and stats; the artifacts and output come before the cards (issue 19)."""
    with Session(FLOW) as session:
        result = session.spin("report", artifacts={"base": 21}, diff=True)
    assert result.ok, result.error and result.error.traceback
    watched = Watched(browser)
    page = watched.page
    page.goto(card_file(tmp_path, "preview-diff-values",
                        render_preview(result, recorded=recorded_hashes(result))))
    total = page.locator('#artifacts tr[data-artifact="total"] td.value').inner_text()
    assert total.replace("\u2009", " ") == "8 → 42", total
    base = page.locator('#artifacts tr[data-artifact="base"] td.value').inner_text()
    assert "→ 21" in base, base
    assert page.locator('#artifacts tr[data-artifact="label"] td.value').inner_text() == ""
    order = page.evaluate("() => [...document.body.children].map(e => e.id).filter(Boolean)")
    assert order.index("artifacts") < order.index("output") < order.index("cards"), order
    watched.close()


def test_diff_summaries_of_big_values_give_shape_dtype_and_stats() -> None:
    from devd.common.summary import diff_summary

    np = pytest.importorskip("numpy")
    assert diff_summary(0.95) == "0.95"
    big = diff_summary(np.arange(12, dtype="float64").reshape(3, 4))
    assert big == "shape (3, 4) float64 · mean 5.5 · min 0 · max 11", big
    assert diff_summary(list(range(100))).startswith("len 100")


def test_a_traceback_starts_at_the_users_code(in_project: Path, browser: Any,
                                              tmp_path: Path) -> None:
    """devd's and Metaflow's frames are folded behind 'show full traceback' (issue 19)."""
    with Session(FLOW) as session:
        result = session.spin("broken", artifacts={"total": "many"}, diff=True)
    assert not result.ok and result.error is not None
    watched = Watched(browser, height=700)
    page = watched.page
    page.goto(card_file(tmp_path, "preview-traceback",
                        render_preview(result, recorded=recorded_hashes(result))))
    shown = page.locator("#error pre.traceback").first.inner_text()
    assert "self.after = self.total + 1" in shown and "TypeError" in shown, shown
    assert "/devd/" not in shown and "/metaflow/" not in shown, shown
    assert not re.search(r"^<flow .* failed:?\s*$", shown, re.M), shown
    full = page.locator("#error details.full-traceback")
    assert full.locator("summary").inner_text() == "show full traceback"
    assert not page.locator("#error pre.traceback-full").is_visible()
    full.locator("summary").click()
    whole = page.locator("#error pre.traceback-full").inner_text()
    assert "/metaflow/" in whole or "/devd/" in whole, whole
    watched.shot(tmp_path, "preview-traceback")
    watched.close()


def test_the_pane_page_shows_a_spin_in_flight_its_buttons_and_a_new_step_at_the_top(
        in_project: Path, browser: Any) -> None:
    """Issue 19: `devd/spinning` shows a bar with Cancel over the page, `devd/spinEnded`
    says cancelled (no 'failed'); Re-spin, Debug and Cancel post devd/action; a new step's
    page, or a failure, starts at the top while the same step re-spun keeps its place."""
    with Session(FLOW) as session:
        report = session.spin("report", artifacts={"base": 21}, diff=True)
        again = session.spin("report", artifacts={"base": 22}, diff=True)
        broken = session.spin("broken", artifacts={"total": "many"}, diff=True)
    host = WebviewHost(browser, render_preview(report, nonce=NONCE), height=500)
    view, locate = host.view, host.locator
    view.wait_for_function("() => document.documentElement.scrollHeight > 1500")
    view.evaluate("window.scrollTo(0, 600)")
    where = "document.getElementById('output').getBoundingClientRect().top"
    before = view.evaluate(where)
    host.post({"type": "devd/spinning", "step": "broken"})
    bar = locate.locator("#spinning")
    bar.wait_for()
    assert "spinning broken" in bar.inner_text()
    assert abs(view.evaluate(where) - before) < 3, "a spin starting moves nothing"
    top = view.evaluate("document.getElementById('spinning').getBoundingClientRect().top")
    assert 0 <= top < 5, "the bar is in view wherever the page is scrolled"
    bar.locator("button[data-action='cancel']").click()
    host.page.wait_for_function("() => window.received.length === 2")
    assert host.received()[1] == {"type": "devd/action", "action": "cancel"}
    host.post({"type": "devd/spinEnded", "step": "broken", "outcome": "cancelled"})
    view.wait_for_function("() => document.getElementById('spinning').innerText"
                           ".includes('cancelled')")
    assert "failed" not in bar.inner_text()
    locate.locator("#head button[data-action='respin']").click()
    locate.locator("#head button[data-action='debug']").click()
    locate.locator("#head button[data-action='showFlow']").click()
    host.page.wait_for_function("() => window.received.length === 5")
    assert [m["action"] for m in host.received()[2:]] == ["respin", "debug", "showFlow"]

    view.evaluate("window.scrollTo(0, 800)")
    host.post({"type": "devd/preview", "html": render_preview(again, nonce=NONCE)})
    view.wait_for_function("() => document.body.dataset.previewUpdates === '1'")
    assert view.evaluate("window.scrollY") > 700, "the same step keeps its place"
    assert not bar.is_visible()
    host.post({"type": "devd/preview", "html": render_preview(broken, nonce=NONCE)})
    view.wait_for_function("() => document.body.dataset.previewUpdates === '2'")
    assert view.evaluate("window.scrollY") == 0, "a new step (and a failure) at the top"
    assert locate.locator("#error").is_visible()
    host.close()


def test_the_stale_parents_box_offers_run_resume_and_a_chain(in_project: Path,
                                                              browser: Any) -> None:
    """Issue 19: the stale box's buttons in a pane; Resume names the furthest-up changed step."""
    import dataclasses

    with Session(FLOW) as session:
        result = session.spin("report", artifacts={"base": 21})
    stale = [StaleMark("prepare", "code of step 'prepare' changed since run 1"),
             StaleMark("start", "code of step 'start' changed since run 1")]
    page = render_preview(dataclasses.replace(result, stale=stale), nonce=NONCE)
    assert 'data-action="resume"' not in render_preview(dataclasses.replace(result,
                                                                            stale=stale))
    host = WebviewHost(browser, page)
    box = host.locator.locator("#stale")
    assert box.locator("button").all_inner_texts() == ["Run flow", "Resume from start",
                                                       "Spin from last spins"]
    box.locator("button[data-action='resume']").click()
    box.locator("button[data-action='runFlow']").click()
    host.page.wait_for_function("() => window.received.length === 3")
    assert host.received()[1:] == [{"type": "devd/action", "action": "resume", "step": "start"},
                                   {"type": "devd/action", "action": "runFlow"}]
    host.close()
