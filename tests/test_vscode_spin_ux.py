"""A spin as the user sees it, in a real VS Code (code-server in headless Chromium) (issue 19).

One code-server for the module, with spin on save on; the tests run in order on one flow:
one action is one spin (save + Ctrl+Alt+S), a spin in flight shows `spinning <step>` and a
Cancel button in the pane (opened if closed, titled `devd: <step>`), Cancel ends as
cancelled (not failed, no Problems entry), a run's Cancel too, and a new step's page starts
at the top. Screenshots of the pane in the light and dark themes go to out/screenshots/.

DEVD_TEST_VSIX names another .vsix to test (an older build, to see these tests fail).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from vscode_harness import Workbench, devd_env, devd_workbench, find_editor_tools

pytestmark = pytest.mark.editor

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "out" / "screenshots"
FLOW = "ux_flow.py"
SOURCE = '''\
import os
import time

from metaflow import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))


class UxFlow(FlowSpec):
    @step
    def start(self):
        self.prices = [3, 1, 2]
        self.next(self.train)

    @step
    def train(self):
        with open(os.path.join(HERE, "spins.log"), "a") as log:
            log.write("train\\n")
        time.sleep(1.5)
        self.accuracy = 0.95
        for i in range(60):
            setattr(self, "metric_%d" % i, i); print("line", i)
        self.next(self.slow)

    @step
    def slow(self):
        if os.path.exists(os.path.join(HERE, "slow.txt")):
            time.sleep(60)
        self.done = True
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UxFlow()
'''
TRAIN_BODY = 17  # with open(... "spins.log" ...
ACCURACY = 20  # self.accuracy = 0.95
SLOW_BODY = 27  # if os.path.exists(... "slow.txt" ...
TRAIN_LAST = 23  # self.next(self.slow)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ux")
    (root / FLOW).write_text(SOURCE)
    subprocess.run([sys.executable, FLOW, "run"], cwd=root, check=True, capture_output=True,
                   timeout=300)
    (root / "spins.log").unlink()
    return root


@pytest.fixture(scope="module")
def wb(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    tools, why = find_editor_tools()
    if tools is None:
        pytest.skip(f"no editor tools: {why} (make editor-tools installs them)")
    settings = {"devd.spinOnSave": True, "workbench.colorTheme": "Default Light Modern"}
    vsix = os.environ.get("DEVD_TEST_VSIX") or None
    SHOTS.mkdir(parents=True, exist_ok=True)
    with devd_workbench(tools, workspace, devd_env(tmp_path_factory.mktemp("rt")), FLOW,
                        settings=settings, vsix=vsix, artifacts=SHOTS) as bench:
        yield bench


def pane(wb: Workbench, text: str = "UxFlow/", timeout: float | None = None):
    """The pane's page (the frame with the artifacts table) once it shows ``text``."""
    def find():
        for frame in wb.page.frames:
            try:
                if frame.evaluate("() => !!document.getElementById('artifacts')") and \
                        text in frame.evaluate("() => document.body.innerText"):
                    return frame
            except Exception:
                continue
        return None

    return wb.wait_until(find, f"the pane showing {text!r}", timeout)


def focus_the_flow(wb: Workbench) -> None:
    wb.run_command("View: Focus First Editor Group")
    wb.wait_for_selector(f'.monaco-editor.focused[data-uri$="/{FLOW}"]')


def spins(workspace: Path) -> int:
    log = workspace / "spins.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def devd_status_item(wb: Workbench) -> str:
    """The devd status bar item's text and whether it shows an error icon or background."""
    return wb.page.evaluate("""() => {
        const items = [...document.querySelectorAll('.part.statusbar .statusbar-item')]
            .filter(e => e.innerText.includes('devd'));
        return items.map(e => e.innerText + (e.querySelector('.codicon-error') ? ' [error-icon]'
            : '') + (e.classList.contains('error-kind') ? ' [error-kind]' : '')).join(' | ');
    }""")


def test_one_action_is_one_spin(wb: Workbench, workspace: Path) -> None:
    """Ctrl+Alt+S on an edited file with spin on save: the save and the key make one spin,
    and no red status or Problems entry says a spin was superseded (issue 19, item 3)."""
    wb.goto_line(TRAIN_BODY)
    wb.press("ctrl+alt+s")
    pane(wb, "UxFlow/train", timeout=180)
    wb.wait_until(lambda: spins(workspace) == 1, "the first spin of train")
    wb.wait_for_status_text("devd: train")
    wb.goto_line(ACCURACY)
    wb.press("End")
    wb.press("shift+Home")
    wb.page.keyboard.insert_text("self.accuracy = 0.917")
    wb.press("ctrl+alt+s")  # a dirty file: saved first, which spins on save
    wb.wait_until(lambda: "0.917" in pane(wb, "UxFlow/train").evaluate(
        "() => document.getElementById('artifacts').innerText"), "the new accuracy", 120)
    wb.page.wait_for_timeout(4000)  # a second spin, if any, has started and ended
    assert spins(workspace) == 2, f"{spins(workspace) - 1} spins for one Ctrl+Alt+S"
    status = devd_status_item(wb)
    assert "cancelled" not in status and "[error" not in status, status
    problems = wb.problems_text()
    assert "superseded" not in problems and "Cancelled" not in problems, problems
    wb.press("ctrl+shift+m")  # the Problems panel closed again


def test_a_spin_in_flight_shows_spinning_and_a_cancel_button(wb: Workbench,
                                                             workspace: Path) -> None:
    """While a 60 s step spins: `spinning slow` in the status bar, the pane (closed before)
    open on `devd: slow` with a Cancel button (issue 19, item 4); the pane's Cancel ends the
    spin as cancelled, not failed, with no Problems entry (item 5)."""
    tab = wb.page.locator(".tab", has_text="devd:").first
    tab.hover()
    tab.locator(".tab-actions .action-label").first.click()
    wb.wait_until(lambda: not any("UxFlow/" in t for t in wb.webview_texts()), "the pane closed")
    (workspace / "slow.txt").write_text("sleep")
    try:
        focus_the_flow(wb)
        wb.goto_line(SLOW_BODY)
        wb.press("ctrl+alt+s")
        wb.wait_for_status_text("spinning slow", 30)
        frame = wb.wait_until(lambda: next((f for f in wb.page.frames if _has_cancel(f)), None),
                              "a Cancel button in the pane", 30)
        tabs = wb.page.eval_on_selector_all(".tab", "els => els.map(e => e.innerText)")
        assert any("devd: slow" in t for t in tabs), tabs
        wb.screenshot(SHOTS / "vscode-ux-spinning.png")
        frame.click("button[data-action='cancel']")
        status = wb.wait_for_status_text("cancelled", 60)
        assert "[error" not in devd_status_item(wb), devd_status_item(wb)
        assert "slow" in status
        wb.wait_until(lambda: "cancelled" in frame.evaluate(
            "() => document.getElementById('spinning').innerText"), "the pane saying cancelled")
        assert "failed" not in frame.evaluate("() => document.body.innerText")
        problems = wb.problems_text()
        assert "Cancelled" not in problems and "cancelled" not in problems, problems
        wb.press("ctrl+shift+m")
    finally:
        (workspace / "slow.txt").unlink()


def _has_cancel(frame) -> bool:
    try:
        return bool(frame.evaluate(
            "() => { const b = document.querySelector(\"button[data-action='cancel']\");"
            " return !!b && b.offsetParent !== null; }"))
    except Exception:
        return False


def test_a_new_step_starts_at_the_top_of_the_pane(wb: Workbench) -> None:
    """The pane scrolled down on train's output; a spin of another step shows its header:
    scrolled to the top (issue 19, item 6)."""
    focus_the_flow(wb)
    wb.goto_line(TRAIN_BODY)
    wb.press("ctrl+alt+s")
    frame = pane(wb, "UxFlow/train", 120)
    wb.wait_until(lambda: "line 59" in frame.evaluate("() => document.body.innerText"),
                  "train's output in the pane", 60)
    frame.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    assert frame.evaluate("() => window.scrollY") > 100
    focus_the_flow(wb)
    wb.goto_line(SLOW_BODY)
    wb.press("ctrl+alt+s")
    wb.wait_until(lambda: frame.evaluate("() => document.body.dataset.step") == "slow"
                  and frame.evaluate("() => document.getElementById('status').innerText")
                  .strip() == "succeeded", "the pane on slow", 120)
    assert frame.evaluate("() => window.scrollY") == 0


def test_screenshots_of_the_pane_in_light_and_dark(wb: Workbench) -> None:
    """The pane after a spin with a diff, in the light and the dark theme (look at them)."""
    focus_the_flow(wb)
    wb.goto_line(TRAIN_BODY)
    wb.press("ctrl+alt+s")
    pane(wb, "UxFlow/train", 120)
    wb.page.wait_for_timeout(1500)
    wb.screenshot(SHOTS / "vscode-ux-pane-light.png")
    wb.run_command("Preferences: Toggle between Light/Dark Themes")
    wb.page.wait_for_timeout(2500)
    wb.screenshot(SHOTS / "vscode-ux-pane-dark.png")


def test_the_panes_re_spin_button_spins_the_shown_step(wb: Workbench, workspace: Path) -> None:
    """Re-spin in the pane's header spins the step it shows (issue 19, the pane's buttons)."""
    frame = pane(wb, "UxFlow/train", 60)
    before = spins(workspace)
    updates = int(frame.evaluate("() => Number(document.body.dataset.previewUpdates || 0)"))
    frame.click("#head button[data-action='respin']")
    wb.wait_until(lambda: int(frame.evaluate(
        "() => Number(document.body.dataset.previewUpdates || 0)")) > updates,
        "the pane updated by Re-spin", 90)
    assert spins(workspace) == before + 1


def test_completion_on_a_new_line_after_a_steps_last_line(wb: Workbench) -> None:
    """`self.` typed on a new line after train's last line, unsaved: the daemon's names, not
    VS Code's word-based ones (issue 19, item 9)."""
    focus_the_flow(wb)
    wb.goto_line(TRAIN_LAST)
    wb.press("End")
    wb.press("Enter")
    wb.page.keyboard.insert_text("        self.")
    try:
        wb.press("ctrl+space")
        # Each row's label and icon: the daemon's names are fields, word-based ones text.
        rows = wb.wait_until(lambda: wb.page.eval_on_selector_all(
            ".suggest-widget .monaco-list-row", """els => els.map(e => [
                (e.querySelector('.label-name') || e).innerText.trim(),
                (e.querySelector('.suggest-icon') || {className: ''}).className])"""),
            "the suggest widget", 30)
        kinds = dict(rows)
        assert "symbol-field" in kinds.get("prices", ""), rows
        assert "symbol-field" in kinds.get("accuracy", ""), rows
    finally:
        wb.press("Escape")
        wb.run_command("File: Revert File")  # the typed line was never saved


def test_a_cancelled_run_says_cancelled(wb: Workbench, workspace: Path) -> None:
    """Cancel on a run's progress: 'cancelled', not 'failed (exit code -9)' (item 5)."""
    (workspace / "slow.txt").write_text("sleep")
    try:
        wb.clear_notifications()
        focus_the_flow(wb)
        wb.press("ctrl+alt+r")
        toast = wb.wait_until(lambda: next((t for t in wb.page.query_selector_all(
            ".notifications-toasts .notification-toast") if "run ux_flow.py" in t.inner_text()),
            None), "the run's progress", 60)
        wb.page.wait_for_timeout(3000)
        toast.hover()
        toast.query_selector("a.monaco-button:has-text('Cancel'), .monaco-button:has-text('Cancel')"
                             ).click()
        message = wb.wait_until(
            lambda: next((t for t in wb.notifications_text() + wb.notification_center_text()
                          if "cancelled" in t or "failed" in t), None),
            "the run's end", 120)
        assert "cancelled" in message and "failed" not in message, message
    finally:
        (workspace / "slow.txt").unlink()
