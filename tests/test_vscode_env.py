"""A step spun in its own environment from a real VS Code (code-server in headless Chromium)
(issue 24, item 4): the workspace holds tests/test_stepenv.py's flow and the Metaflow
extension (tests/venvstep.py) whose ``@venv_step`` runs ``train`` in a second virtualenv
with termcolor 2.3.0, which devd's venv lacks. After a recorded run, Ctrl+Alt+S in ``train``
shows the pane with the header naming the environment and the second venv's interpreter,
and the step's own output (its ``sys.executable`` and termcolor's version) proves it ran
there; a second Ctrl+Alt+S is spun by the same warm worker (``devd status``), which the
status bar's tooltip lists. A screenshot of the pane goes to out/screenshots/.

DEVD_TEST_VSIX names another .vsix to test (an older build, to see these tests fail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vscode_harness import Workbench, devd_env, devd_workbench, find_editor_tools

from tests import test_stepenv, venvstep

pytestmark = pytest.mark.editor

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "out" / "screenshots"
FLOW = "flow.py"
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"

second_venv = test_stepenv.second_venv  # the session fixture: the venv, or a skip


@pytest.fixture(scope="module")
def workspace(second_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension, test_stepenv's flow (train in the second venv) and one real run."""
    root = tmp_path_factory.mktemp("venv")
    venvstep.write_extension(root)
    (root / FLOW).write_text(test_stepenv.FLOW.format(
        python=str(second_venv / "bin" / "python")))
    proc = subprocess.run([sys.executable, FLOW, "run"], cwd=root, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def env(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The editor's devd environment, with the project's extension importable."""
    return {**devd_env(tmp_path_factory.mktemp("rt")), "PYTHONPATH": str(workspace)}


@pytest.fixture(scope="module")
def wb(workspace: Path, env: dict[str, str]) -> Iterator[Workbench]:
    tools, why = find_editor_tools()
    if tools is None:
        pytest.skip(f"no editor tools: {why} (make editor-tools installs them)")
    settings = {"workbench.colorTheme": "Default Light Modern"}
    vsix = os.environ.get("DEVD_TEST_VSIX") or None
    SHOTS.mkdir(parents=True, exist_ok=True)
    with devd_workbench(tools, workspace, env, FLOW, settings=settings, vsix=vsix,
                        artifacts=SHOTS) as bench:
        yield bench


def train_line() -> int:
    """The line of train's body that the cursor goes to."""
    lines = test_stepenv.FLOW.splitlines()
    return next(i for i, text in enumerate(lines, 1) if "self.y = self.x + 1" in text)


def pane(wb: Workbench, timeout: float = 180) -> Any:
    """The pane's page (the frame with the artifacts table) showing train's spin."""
    def find() -> Any:
        for frame in wb.page.frames:
            try:
                if frame.evaluate("() => !!document.getElementById('artifacts')") and \
                        "EnvFlow/train" in frame.evaluate("() => document.body.innerText"):
                    return frame
            except Exception:
                continue
        return None

    return wb.wait_until(find, "the pane showing EnvFlow/train", timeout)


def previews(frame: Any) -> int:
    return int(frame.evaluate("() => Number(document.body.dataset.previewUpdates || 0)"))


def workers(workspace: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """`devd status --json`'s workers: the editor's daemon (its runtime dir) asked by the CLI."""
    proc = subprocess.run([sys.executable, "-m", "devd.cli", "status", str(workspace), "--json"],
                          cwd=workspace, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    found: list[dict[str, Any]] = json.loads(proc.stdout)["workers"]
    return found


def shown(frame: Any, selector: str) -> str:
    return str(frame.evaluate(f"() => document.querySelector({selector!r})?.innerText ?? ''"))


def test_ctrl_alt_s_spins_the_step_in_its_environment_by_a_warm_worker(
        wb: Workbench, workspace: Path, env: dict[str, str], second_venv: Path) -> None:
    python = str(second_venv / "bin" / "python")
    wb.goto_line(train_line())
    wb.press("ctrl+alt+s")
    frame = pane(wb)
    wb.wait_until(lambda: "succeeded" in shown(frame, "#status"), "train succeeded", 120)
    header = shown(frame, "#environment")
    assert header == f"env: @venv_step · {python} {VERSION}", header
    body = frame.evaluate("() => document.body.innerText")
    assert f"train in {python} {venvstep.VERSION}" in body, body  # the step's own print
    artifacts = shown(frame, "#artifacts")
    assert venvstep.VERSION in artifacts and second_venv.name in artifacts, artifacts
    wb.screenshot(SHOTS / "vscode-env-pane.png")

    first = workers(workspace, env)
    assert [w["python"] for w in first] == [python], first
    assert first[0]["spins"] == 1, first
    pid = first[0]["pid"]

    before = previews(frame)
    wb.run_command("View: Focus First Editor Group")
    wb.wait_for_selector(f'.monaco-editor.focused[data-uri$="/{FLOW}"]')
    wb.goto_line(train_line())
    wb.press("ctrl+alt+s")
    wb.wait_until(lambda: previews(pane(wb)) > before, "the second spin's page", 120)
    frame = pane(wb)
    wb.wait_until(lambda: "succeeded" in shown(frame, "#status"), "train succeeded again", 120)
    assert f"train in {python} {venvstep.VERSION}" in frame.evaluate(
        "() => document.body.innerText")
    again = workers(workspace, env)
    assert [(w["pid"], w["spins"]) for w in again] == [(pid, 2)], again
    # the step forked from that worker: its parent_pid artifact is the worker's pid
    rows = frame.evaluate("""() => [...document.querySelectorAll('#artifacts tr')]
        .map(r => [...r.cells].map(c => c.innerText.trim()))""")
    assert [r[2] for r in rows if r and r[0] == "parent_pid"] == [str(pid)], rows


def test_the_status_bar_tooltip_lists_the_worker(wb: Workbench, workspace: Path,
                                                 env: dict[str, str],
                                                 second_venv: Path) -> None:
    pid = workers(workspace, env)[0]["pid"]
    item = wb.page.locator(".part.statusbar .statusbar-item", has_text="devd").first
    item.hover()
    want = f"worker: @venv_step in {second_venv / 'bin' / 'python'} (pid {pid},"
    tip = wb.wait_until(lambda: next((t for t in wb.page.eval_on_selector_all(
        ".monaco-hover, .workbench-hover, .custom-hover", "els => els.map(e => e.innerText)")
        if want in t), None), "the worker in the status bar's tooltip", 30)
    assert "warm" in tip, tip
