"""Debugging a step in a real VS Code (code-server in headless Chromium), on a real flow.

The extension's own `devd` debug type attaches VS Code to debugpy in the step's child (no
Python extension installed): F9 sets a breakpoint, Ctrl+Alt+D saves and debugs the step
under the cursor, the editor stops on that line with the parents' artifacts in the Variables
view, the Debug Console evaluates an expression on them, F5 continues and the card pane
shows the spin's result. Screenshots go to
out/screenshots/vscode-debug-*.png; the key-press-to-stopped time to
out/screenshots/vscode-debug-timing.txt.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vscode_harness import Workbench, devd_env, devd_workbench, find_editor_tools, flow_workspace

pytestmark = pytest.mark.editor

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "out" / "screenshots"
FLOW = "hello_flow.py"
LINES = (REPO / "examples" / FLOW).read_text().splitlines()
TRAIN_BODY = LINES.index("        self.rate = self.input") + 1
BREAK_LINE = TRAIN_BODY  # the step's first line: it has read none of its parents' artifacts
STOPPED = ".monaco-editor .codicon-debug-stackframe"  # the yellow arrow where it stopped


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return flow_workspace(tmp_path_factory.mktemp("dws"), FLOW, sys.executable)


@pytest.fixture(scope="module")
def wb(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    tools, why = find_editor_tools()
    if tools is None:
        pytest.skip(f"no editor tools: {why} (make editor-tools installs them)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with devd_workbench(tools, workspace, devd_env(tmp_path_factory.mktemp("drt")), FLOW,
                        artifacts=SHOTS) as bench:
        yield bench


def preview_frame(wb: Workbench, text: str):
    """The card pane's page (not a card inside it)."""
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


def view_text(wb: Workbench, title: str) -> str:
    """The text of a Run and Debug view's pane (VARIABLES, CALL STACK...)."""
    pane = wb.page.locator(".pane", has=wb.page.locator(".pane-header", has_text=title)).first
    return pane.inner_text().replace("\u00a0", " ") if pane.count() else ""


def expand(wb: Workbench, name: str) -> None:
    """Expand the Variables view's row ``name`` (a scope, or a variable: ``self``)."""
    def row():
        for el in wb.page.query_selector_all(".debug-variables .monaco-list-row"):
            label = el.inner_text().split("\n")[0].replace("\u00a0", " ").strip()
            if label == name or label.startswith((name + ":", name + " ")):
                return el
        return None

    found = wb.wait_until(row, f"{name!r} in the Variables view")
    if found.get_attribute("aria-expanded") != "true":
        found.click()
    wb.wait_until(lambda: (r := row()) and r.get_attribute("aria-expanded") == "true",
                  f"{name!r} expanded in the Variables view")


def updates(frame) -> int:
    return int(frame.evaluate("() => Number(document.body.dataset.previewUpdates || 0)"))


def test_breakpoint_ctrl_alt_d_stops_there_with_the_artifacts(wb: Workbench) -> None:
    # A plain spin first: the daemon is up and the parents warm, the card pane open.
    wb.goto_line(TRAIN_BODY)
    wb.press("ctrl+alt+s")
    wb.wait_for_webview_text("Trained with rate 0.1", timeout=120)
    frame = preview_frame(wb, "HelloFlow/train")
    before = updates(frame)

    # Back to the flow's editor through the palette, as the other editor suites do: a click
    # on its text can land on the tab bar or an overlay while the pane beside it lays out.
    wb.run_command("View: Focus First Editor Group")
    wb.wait_for_selector('.monaco-editor.focused[data-uri$="/hello_flow.py"]')
    wb.goto_line(BREAK_LINE)
    wb.press("F9")
    wb.wait_for_selector(".monaco-editor .codicon-debug-breakpoint")
    wb.goto_line(TRAIN_BODY + 1)
    pressed = time.perf_counter()
    wb.press("ctrl+alt+d")
    wb.wait_for_selector(STOPPED, timeout=60)
    stopped_ms = (time.perf_counter() - pressed) * 1000

    # Stopped on the breakpoint's line, in `train`, of this flow.
    wb.wait_until(lambda: f"train {FLOW} {BREAK_LINE}:" in " ".join(
        view_text(wb, "Call Stack").split()), f"train at {FLOW}:{BREAK_LINE} in the Call Stack")
    # Variables: Locals holds `self`; expanded, it lists the parents' artifacts.
    expand(wb, "Locals")
    expand(wb, "self")
    def artifacts_listed() -> str:
        text = " ".join(view_text(wb, "Variables").split())
        return text if "data = [0, 3, 6" in text and "rates = [0.1, 0.2, 0.3]" in text else ""

    wb.wait_until(artifacts_listed, "the parent artifacts `data` and `rates` under self")
    # The Debug Console evaluates expressions on them.
    wb.page.click(".repl-input-wrapper .monaco-editor .view-lines")
    wb.type("sum(self.data[:3]) * self.input")
    wb.press("Enter")
    wb.wait_until(lambda: "0.9" in wb.page.inner_text(".repl .monaco-list"),
                  "0.9 (= (0 + 3 + 6) * 0.1) in the Debug Console")
    wb.screenshot(SHOTS / "vscode-debug-1-stopped.png")

    wb.press("F5")  # continue: the step ends, and so does the debug session
    wb.wait_for_selector(STOPPED, state="detached", timeout=60)
    wb.wait_until(lambda: updates(frame) > before, "the card pane updated by the debug spin", 60)
    assert "Trained with rate 0.1" in " ".join(wb.webview_texts())
    assert "succeeded" in frame.evaluate("() => document.getElementById('status').innerText")
    wb.wait_until(lambda: not wb.page.is_visible(".debug-toolbar"),
                  "the debug session to end (no debug toolbar)", 30)
    wb.screenshot(SHOTS / "vscode-debug-2-continued.png")
    (SHOTS / "vscode-debug-timing.txt").write_text(
        f"Ctrl+Alt+D to stopped at the breakpoint (warm daemon): {stopped_ms:.0f} ms\n")
    print(f"\nCtrl+Alt+D to stopped at the breakpoint: {stopped_ms:.0f} ms")
    log = wb.server.output_channel("devd") if wb.server else ""
    print("\n".join(line for line in log.splitlines() if "debug" in line))
