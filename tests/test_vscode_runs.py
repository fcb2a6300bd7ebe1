"""The runs explorer's values and actions in a real VS Code (code-server in headless
Chromium) (issue 20 item 2).

A flow run twice for real: `Metaflow Runs` lists both runs, newest first; selecting an
artifact shows its value in the devd pane as the daemon rendered it (a DataFrame's head, an
image); a run pinned from the tree shows in the status bar and Ctrl+Alt+S in the editor then
takes its parents from that run, not the newest, until it is unpinned. Screenshots of the
pane and the tree go to out/screenshots/.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vscode_harness import Workbench, devd_env, devd_workbench, find_editor_tools

pytestmark = pytest.mark.editor
pytest.importorskip("pandas")
pytest.importorskip("PIL")

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "out" / "screenshots"
FLOW = "values_flow.py"
SOURCE = '''\
from metaflow import FlowSpec, Parameter, step


class ValuesFlow(FlowSpec):
    scale = Parameter("scale", default=1, type=int)

    @step
    def start(self):
        import numpy as np
        import pandas as pd
        from PIL import Image, ImageDraw

        self.frame = pd.DataFrame({"city": ["Oslo", "Lima", "Pune", "Kobe"],
                                   "temp": [3.5, 19.0, 27.25, 12.0],
                                   "rain": [True, False, False, True]})
        self.grid = np.linspace(0, 1, 600).reshape(20, 30) * self.scale
        picture = Image.new("RGB", (320, 200), (240, 240, 250))
        draw = ImageDraw.Draw(picture)
        draw.ellipse((40, 30, 180, 170), fill=(220, 60, 60))
        draw.rectangle((170, 60, 290, 160), fill=(40, 110, 220))
        self.picture = picture
        self.settings = {"lr": 0.01, "layers": [64, 32], "scale": self.scale}
        self.next(self.train)

    @step
    def train(self):
        self.total = float(self.grid.sum())
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ValuesFlow()
'''


def _run(root: Path, *args: str) -> str:
    ids = root / ".run-id"
    subprocess.run([sys.executable, FLOW, "run", *args, "--run-id-file", str(ids)], cwd=root,
                   check=True, capture_output=True, timeout=300)
    return ids.read_text().strip()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The project, its older run (scale 1) and its newest (scale 7)."""
    root = tmp_path_factory.mktemp("runsview")
    (root / FLOW).write_text(SOURCE)
    return root, _run(root), _run(root, "--scale", "7")


@pytest.fixture(scope="module")
def wb(workspace: tuple[Path, str, str],
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    tools, why = find_editor_tools()
    if tools is None:
        pytest.skip(f"no editor tools: {why} (make editor-tools installs them)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    env = devd_env(tmp_path_factory.mktemp("rt"))
    with devd_workbench(tools, workspace[0], env, FLOW, artifacts=SHOTS,
                        settings={"workbench.colorTheme": "Default Light Modern"}) as bench:
        yield bench


ROWS = "#workbench\\.view\\.extension\\.devd .monaco-list-row"


def tree_rows(wb: Workbench) -> list[str]:
    return wb.page.eval_on_selector_all(
        ROWS, "els => els.map(e => e.innerText.replace(/\\n/g, ' '))")


def row(wb: Workbench, starts: str) -> Any:
    rows = wb.page.locator(ROWS)
    for i in range(rows.count()):
        if rows.nth(i).inner_text().replace("\n", " ").startswith(starts):
            return rows.nth(i)
    raise AssertionError(f"no row starting {starts!r} in {tree_rows(wb)}")


def wait_row(wb: Workbench, starts: str, what: str, timeout: float = 60) -> None:
    wb.wait_until(lambda: any(r.startswith(starts) for r in tree_rows(wb)) or None, what,
                  timeout=timeout)


def value_frame(wb: Workbench, name: str) -> Any:
    """The pane's page once it shows artifact ``name``'s value."""
    def find() -> Any:
        for frame in wb.page.frames:
            try:
                if frame.evaluate("() => document.body && document.body.dataset.artifact") == name:
                    return frame
            except Exception:  # a frame navigating away: look again
                continue
        return None
    return wb.wait_until(find, f"the pane showing {name}'s value", timeout=60)


def open_tree(wb: Workbench) -> None:
    """devd's side bar (a click on its icon when it shows already would close it)."""
    if not wb.page.locator("#workbench\\.view\\.extension\\.devd").is_visible():
        wb.page.locator(".activitybar .action-item a[aria-label^='devd']").first.click()
    wait_row(wb, FLOW, "the flow in the runs tree")


def test_the_tree_lists_the_runs_newest_first(wb: Workbench,
                                              workspace: tuple[Path, str, str]) -> None:
    _, older, newest = workspace
    open_tree(wb)
    runs = wb.wait_until(lambda: [m.group(1) for r in tree_rows(wb)
                                  if (m := re.match(r"(\d+)\s*(pinned · )?ok ·", r))] or None,
                         "the flow's runs")
    assert runs[:2] == [newest, older], tree_rows(wb)


def test_an_artifacts_value_opens_in_the_pane(wb: Workbench,
                                              workspace: tuple[Path, str, str]) -> None:
    """A DataFrame's head with shape and dtypes, an image as an image, JSON pretty."""
    _, _, newest = workspace
    open_tree(wb)
    row(wb, newest).click()
    wait_row(wb, "start", "the run's steps")
    row(wb, "start").click()
    wait_row(wb, "task ", "the start step's task")
    row(wb, "task ").click()
    wait_row(wb, "frame", "the task's artifacts")
    row(wb, "frame").click()
    frame = value_frame(wb, "frame")
    assert frame.evaluate("() => document.body.dataset.kind") == "dataframe"
    text = frame.evaluate("() => document.body.innerText")
    assert "(4, 3)" in text and "Oslo" in text and "27.25" in text, text
    dtypes = frame.evaluate("() => document.getElementById('dtypes').innerText")
    assert "float64" in dtypes and "bool" in dtypes, dtypes
    wb.page.wait_for_timeout(500)
    wb.screenshot(SHOTS / "vscode-runs-value-frame.png")
    row(wb, "picture").click()
    picture = value_frame(wb, "picture")
    size = picture.evaluate("""() => { const i = document.getElementById('image');
        return i && i.complete ? [i.naturalWidth, i.naturalHeight] : null; }""")
    assert size == [320, 200], size  # the daemon's PNG, decoded by the page
    wb.page.wait_for_timeout(500)
    wb.screenshot(SHOTS / "vscode-runs-value-image.png")
    row(wb, "settings").click()
    settings = value_frame(wb, "settings")
    assert '"layers": [\n    64,' in settings.evaluate(
        "() => document.getElementById('text').textContent")
    assert not [e for e in wb.errors if "Content Security Policy" in e], wb.errors


def pin(wb: Workbench, run: str) -> None:
    """The run's Pin as Parents of Spins button in the tree; the status bar then says so."""
    open_tree(wb)
    target = row(wb, run)
    target.hover()
    target.locator(".action-label[aria-label='Pin as Parents of Spins']").click()
    wb.wait_for_status_text(f"ValuesFlow/{run}", timeout=30)


def unpin(wb: Workbench, run: str) -> None:
    """A click on the pin in the status bar; it goes."""
    wb.page.locator(".statusbar-item", has_text=f"ValuesFlow/{run}").first.click()
    wb.wait_until(lambda: not any(f"ValuesFlow/{run}" in t for t in wb.status_bar_items())
                  or None, "the pin gone from the status bar", timeout=30)


def press_in_train(wb: Workbench, key: str) -> None:
    """``key`` in the flow's editor with the cursor in `train`."""
    wb.focus_editor_group(1)  # the flow, by key (a click on its text was intercepted here)
    wb.goto_line(SOURCE.splitlines().index("    def train(self):") + 2)
    wb.press(key)


def test_a_pinned_run_is_the_parents_of_ctrl_alt_s(wb: Workbench,
                                                   workspace: tuple[Path, str, str]) -> None:
    """Pin the older run in the tree: the status bar says so, and Ctrl+Alt+S in the editor
    spins with that run's parents (scale 1, not the newest's 7) until it is unpinned."""
    _, older, newest = workspace
    pin(wb, older)
    wb.wait_until(lambda: any(re.match(rf"{older}\s*pinned ·", r) for r in tree_rows(wb))
                  or None, "the pinned run marked in the tree")
    wb.page.mouse.move(700, 450)  # the inline button's hover off the tree
    wb.page.wait_for_timeout(500)
    wb.screenshot(SHOTS / "vscode-runs-pinned.png")
    press_in_train(wb, "Control+Alt+s")
    wb.wait_for_webview_text(f"parents from run {older}", timeout=180)
    unpin(wb, older)
    press_in_train(wb, "Control+Alt+s")
    wb.wait_for_webview_text(f"parents from run {newest}", timeout=180)


def test_a_pinned_run_is_the_parents_of_ctrl_alt_d_too(wb: Workbench,
                                                       workspace: tuple[Path, str, str]) -> None:
    """A debug spin (Ctrl+Alt+D, no breakpoint: the step runs through under the debugger)
    takes its parents from the pinned run, as Ctrl+Alt+S does."""
    _, older, newest = workspace
    pin(wb, older)
    wb.wait_for_webview_text(f"parents from run {newest}", timeout=30)  # the last, unpinned
    press_in_train(wb, "Control+Alt+d")
    wb.wait_for_webview_text(f"parents from run {older}", timeout=180)
    wb.wait_until(lambda: not wb.page.is_visible(".debug-toolbar"),
                  "the debug session to end (no debug toolbar)", 60)
    unpin(wb, older)
