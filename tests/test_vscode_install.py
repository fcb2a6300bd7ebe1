"""The extension in a real VS Code whose interpreter has no devd: it offers the devd wheel
shipped inside the .vsix, installs it with pip into that interpreter, and starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_vscode_e2e import SHOTS, TRAIN_BODY
from vscode_harness import CodeServer, extension_vsix, find_editor_tools, open_workbench

pytestmark = pytest.mark.editor

REPO = Path(__file__).resolve().parent.parent


def test_devd_missing_from_the_interpreter_is_offered_and_installed(
        tmp_path: Path) -> None:
    tools, why = find_editor_tools()
    if tools is None:
        pytest.skip(f"no editor tools: {why} (make editor-tools installs them)")
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copy(REPO / "examples" / "hello_flow.py", ws / "hello_flow.py")
    subprocess.run([sys.executable, "hello_flow.py", "run"], cwd=ws, check=True,
                   capture_output=True, timeout=300)
    fresh = tmp_path / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    # pip from this venv's own copy, so the fresh interpreter needs no network for pip itself
    subprocess.run([str(fresh / "bin" / "python"), "-m", "ensurepip", "--default-pip"],
                   check=True, capture_output=True, timeout=300)
    python = fresh / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import devd"], capture_output=True,
                           cwd=tmp_path)  # not from a cwd that holds devd's sources
    assert probe.returncode != 0, "the fresh interpreter must not have devd yet"
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    env = {"USER": os.environ.get("USER", "devd-test"), "METAFLOW_DEFAULT_DATASTORE": "local",
           "METAFLOW_DEFAULT_METADATA": "local", "DEVD_RUNTIME_DIR": str(runtime)}
    with CodeServer(extension_vsix(), ws, {"devd.pythonPath": str(python)}, env,
                    tools=tools) as server, open_workbench(server, artifacts=SHOTS) as wb:
        wb.open_file("hello_flow.py")
        offer = wb.wait_for_notification("devd is not installed", timeout=120)
        assert str(python) in offer and "Install devd" in offer
        wb.screenshot(SHOTS / "vscode-install-offer.png")
        wb.page.locator(".notification-toast .monaco-button", has_text="Install devd").click()
        wb.wait_until(lambda: "not installed" not in wb.status_bar_text()
                      and "$(sync" not in wb.status_bar_text()
                      and "devd" in wb.status_bar_text(), "devd installed and started", 600)
        wb.click_editor()
        wb.goto_line(TRAIN_BODY)
        wb.press("ctrl+alt+s")
        wb.wait_for_webview_text("Trained with rate 0.1", timeout=120)
        subprocess.run([str(python), "-m", "devd.cli", "daemon", "stop", str(ws)],
                       env={**os.environ, **env}, capture_output=True, timeout=60)
    where = subprocess.run([str(python), "-c", "import devd; print(devd.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(str(fresh)), where  # the wheel, installed into that interpreter
