"""The devd extension in a real VS Code (code-server in headless Chromium), on a real flow.

One code-server for the module; the tests run in order, as a user would work: spin a step
with a card, edit the card and spin again (the pane updates in place), break the step,
run the flow, spin from a terminal, and put the cursor outside any step. Screenshots go
to out/screenshots/ (open them: they are the editor as a user sees it).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from vscode_harness import Workbench, devd_env, devd_workbench, find_editor_tools, flow_workspace

pytestmark = pytest.mark.editor

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "out" / "screenshots"
FLOW = "hello_flow.py"
VENV_BIN = Path(sys.executable).parent

DEVD_ENV: dict[str, str] = {}  # what the editor's devd runs with (runtime dir, user)

# Lines of examples/hello_flow.py (1-based), checked by test_flow_lines_are_as_expected.
TRAIN_BODY = 20  # self.rate = self.input
CARD_LINE = 24  # current.card.append(Markdown(f"# Trained with rate ...
OUTSIDE = 2  # a blank line above the class


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with hello_flow.py and one real recorded run."""
    return flow_workspace(tmp_path_factory.mktemp("ws"), FLOW, sys.executable)


def runs(workspace: Path) -> set[str]:
    return {p.name for p in (workspace / ".metaflow" / "HelloFlow").iterdir()
            if p.name.isdigit()}


@pytest.fixture(scope="module")
def wb(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    tools, why = find_editor_tools()
    if tools is None:
        pytest.skip(f"no editor tools: {why} (make editor-tools installs them)")
    env = devd_env(tmp_path_factory.mktemp("rt"))
    DEVD_ENV.update(env)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with devd_workbench(tools, workspace, env, FLOW, artifacts=SHOTS) as bench:
        yield bench


def preview_frame(wb: Workbench, text: str):
    """The pane's page (not a card inside it): the frame with the artifacts table."""
    def find():
        for frame in wb.page.frames:
            try:
                if frame.evaluate("() => !!document.getElementById('artifacts')") and \
                        text in frame.evaluate("() => document.body.innerText"):
                    return frame
            except Exception:
                continue
        return None

    return wb.wait_until(find, f"the card pane showing {text!r}")


def focus_the_flow(wb: Workbench) -> None:
    """Keyboard focus in the flow's editor (the keys are bound `when editorLangId == python`,
    a context the focused editor sets): the palette's own command, then checked."""
    wb.run_command("View: Focus First Editor Group")
    wb.wait_for_selector(f'.monaco-editor.focused[data-uri$="/{FLOW}"]')


def replace_line(wb: Workbench, line: int, text: str) -> None:
    """Select line ``line`` (its text, after the indentation) and type ``text`` over it."""
    wb.goto_line(line)
    wb.press("End")
    wb.press("shift+Home")
    wb.page.keyboard.insert_text(text)


def test_flow_lines_are_as_expected() -> None:
    lines = (REPO / "examples" / FLOW).read_text().splitlines()
    assert lines[TRAIN_BODY - 1].strip() == "self.rate = self.input"
    assert lines[CARD_LINE - 1].strip().startswith('current.card.append(Markdown(f"# Trained')
    assert lines[OUTSIDE - 1].strip() == ""


def test_spin_shows_the_card_and_the_status(wb: Workbench) -> None:
    wb.goto_line(TRAIN_BODY)
    wb.press("ctrl+alt+s")
    wb.wait_for_webview_text("Trained with rate 0.1", timeout=120)
    frame = preview_frame(wb, "HelloFlow/train")
    assert "succeeded" in frame.evaluate("() => document.getElementById('status').innerText")
    assert "score" in frame.evaluate("() => document.getElementById('artifacts').innerText")
    status = wb.wait_for_status_text("devd: train")
    assert " ms" in status
    wb.screenshot(SHOTS / "vscode-1-spin.png")


def test_edit_and_spin_again_updates_the_pane_in_place(wb: Workbench) -> None:
    frame = preview_frame(wb, "HelloFlow/train")
    frame.evaluate("() => { window.devdTestMarker = 'same page'; }")
    before = int(frame.evaluate("() => Number(document.body.dataset.previewUpdates || 0)"))
    replace_line(wb, CARD_LINE, 'current.card.append(Markdown(f"# Fitted with rate '
                                '{self.rate}\\nscore = {self.score:.2f}"))')
    wb.save()
    wb.goto_line(TRAIN_BODY)
    wb.press("ctrl+alt+s")
    wb.wait_for_webview_text("Fitted with rate 0.1", timeout=60)
    assert frame.evaluate("() => window.devdTestMarker") == "same page", "the pane reloaded"
    after = int(frame.evaluate("() => Number(document.body.dataset.previewUpdates || 0)"))
    assert after > before
    assert not any("Trained with rate" in t for t in wb.webview_texts())
    wb.screenshot(SHOTS / "vscode-2-edited.png")


def test_a_broken_step_shows_the_error_its_line_and_a_diagnostic(wb: Workbench) -> None:
    replace_line(wb, TRAIN_BODY, "self.rate = self.input / 0")
    wb.save()
    wb.goto_line(TRAIN_BODY)
    wb.press("ctrl+alt+s")
    text = wb.wait_for_webview_text("ZeroDivisionError", timeout=60)
    assert f"{FLOW}:{TRAIN_BODY}" in text
    frame = preview_frame(wb, "ZeroDivisionError")
    assert "failed" in frame.evaluate("() => document.getElementById('status').innerText")
    wb.wait_until(lambda: wb.squiggles("error") > 0, "an error squiggle in the editor")
    problems = wb.problems_text()
    assert "ZeroDivisionError" in problems, problems
    assert f"[Ln {TRAIN_BODY}" in problems or f"({TRAIN_BODY}," in problems, problems
    wb.screenshot(SHOTS / "vscode-3-error.png")
    wb.press("Escape")
    # The file:line link in the pane jumps to the line.
    wb.goto_line(1)
    frame.click("#error .where a.open-file")
    wb.wait_until(lambda: f"Ln {TRAIN_BODY}," in wb.status_bar_text(),
                  f"the cursor on line {TRAIN_BODY} after clicking the error's link")
    replace_line(wb, TRAIN_BODY, "self.rate = self.input")
    wb.save()


def test_run_the_flow_with_progress(wb: Workbench, workspace: Path) -> None:
    before = runs(workspace)
    focus_the_flow(wb)
    wb.press("ctrl+alt+r")
    # The progress notification lives only while the run does (a few seconds): the same
    # handler that reports to it logs each report, which stays to be read.
    wb.wait_until(lambda: any("finished: run" in t for t in wb.notifications_text())
                  or any("finished: run" in t for t in wb.notification_center_text()),
                  "the run's notification", 180)
    wb.press("Escape")
    log = wb.server.output_channel("devd") if wb.server else ""
    assert re.search(r"run hello_flow\.py: \d+/\d+ steps \(", log), log[-2000:]
    new = runs(workspace) - before
    assert len(new) == 1, f"expected one new run, got {new}"
    run_id = new.pop()
    assert (workspace / ".metaflow" / "HelloFlow" / run_id / "end").is_dir()
    wb.screenshot(SHOTS / "vscode-4-run.png")


def test_a_terminal_spin_moves_the_pane(wb: Workbench) -> None:
    wb.open_terminal()
    # The venv's devd by its path: a login shell may rebuild PATH without the venv.
    wb.terminal_run(f"{VENV_BIN / 'devd'} spin {FLOW} join", expect="best")
    wb.wait_until(lambda: preview_frame(wb, "HelloFlow/join"), "the pane on the terminal's spin")
    wb.wait_for_status_text("devd: join")
    wb.screenshot(SHOTS / "vscode-5-terminal.png")


def test_cursor_outside_a_step_says_so_in_one_line(wb: Workbench) -> None:
    focus_the_flow(wb)
    wb.goto_line(OUTSIDE)
    wb.press("ctrl+alt+s")
    message = wb.wait_for_notification("not inside a step")
    assert "start" in message and "train" in message and "join" in message
    wb.screenshot(SHOTS / "vscode-6-outside.png")


def daemon_pid(workspace: Path) -> int | None:
    out = subprocess.run([sys.executable, "-m", "devd.cli", "daemon", "status", str(workspace)],
                         env={**os.environ, **DEVD_ENV}, capture_output=True, text=True,
                         timeout=60).stdout
    found = re.search(r"daemon running \(pid (\d+)\)", out)
    return int(found.group(1)) if found else None


def test_a_daemon_that_dies_is_restarted_once_then_reported(wb: Workbench,
                                                             workspace: Path) -> None:
    first = daemon_pid(workspace)
    assert first, "no daemon runs for the editor"
    os.kill(first, signal.SIGKILL)
    second = wb.wait_until(lambda: (pid := daemon_pid(workspace)) and pid != first and pid,
                           "a new daemon started by the extension", 90)
    frame = preview_frame(wb, "HelloFlow/")
    before = int(frame.evaluate("() => Number(document.body.dataset.previewUpdates || 0)"))
    focus_the_flow(wb)
    wb.goto_line(TRAIN_BODY)
    wb.press("ctrl+alt+s")  # the editor works on the new daemon
    wb.wait_until(lambda: int(frame.evaluate(
        "() => Number(document.body.dataset.previewUpdates || 0)")) > before,
        "the pane updated by a spin on the restarted daemon", 90)
    wb.wait_for_status_text("devd: train")
    os.kill(second, signal.SIGKILL)
    status = wb.wait_for_status_text("daemon stopped", 90)
    assert "devd" in status
    wb.screenshot(SHOTS / "vscode-7-daemon-stopped.png")
    wb.page.locator(".statusbar-item", has_text="daemon stopped").first.click()
    def panel_text() -> str:
        panel = wb.page.locator(".part.panel")
        return panel.inner_text().replace("\u00a0", " ") if panel.count() else ""

    wb.wait_until(lambda: "not restarting" in panel_text(), "the devd log in the Output panel",
                  30)


def test_palette_commands_restart_status_and_chained_spins(wb: Workbench,
                                                           workspace: Path) -> None:
    """After the daemon was given up on: Restart Daemon starts a new one; Show Daemon Status
    prints it; Spin From Last Spins chains `end` on the spin of `join` just made."""
    wb.run_command("devd: Restart Daemon")
    wb.wait_until(lambda: daemon_pid(workspace), "a daemon started by Restart Daemon", 90)
    wb.wait_until(lambda: "daemon stopped" not in wb.status_bar_text(), "the status back", 60)
    focus_the_flow(wb)
    wb.goto_line(29)  # join's body
    wb.press("ctrl+alt+s")
    preview_frame(wb, "HelloFlow/join")
    wb.goto_line(35)  # end's body
    wb.run_command("devd: Spin From Last Spins")
    frame = preview_frame(wb, "HelloFlow/end")
    assert "devd-spin" in frame.evaluate("() => document.querySelector('.head').innerText")
    wb.run_command("devd: Show Daemon Status")

    def panel_text() -> str:
        panel = wb.page.locator(".part.panel")
        return panel.inner_text().replace("\u00a0", " ") if panel.count() else ""

    wb.wait_until(lambda: "devd daemon for" in panel_text() and "last spins" in panel_text(),
                  "the daemon status in the devd output channel", 30)
    wb.screenshot(SHOTS / "vscode-8-palette.png")


def test_hover_shows_the_warm_value_of_an_artifact(wb: Workbench) -> None:
    """The daemon's hover, through the language client: `self.best` in `join` after its spin."""
    focus_the_flow(wb)
    wb.goto_line(30, 15)  # `        self.best = max(self.scores)`, on "best"
    text = wb.hover_text()
    assert "self.best" in text and "float" in text and "40.5" in text, text
