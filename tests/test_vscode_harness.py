"""The editor harness itself, proven on a tiny extension built and packaged inside the test.

The extension (written below as strings) shows a status bar item; on Ctrl+Alt+S in a Python
file it opens a webview beside the editor with a card-like sandboxed srcdoc iframe, shows a
notification and marks the cursor's line with an error diagnostic. The test drives a real
VS Code (code-server) in Debian's headless Chromium and reads all of that back.
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from vscode_harness import (
    BASE_SETTINGS,
    CodeServer,
    find_editor_tools,
    open_workbench,
    package_vsix,
    playwright_key,
    zip_vsix,
)

pytestmark = pytest.mark.editor

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "out" / "screenshots"

PACKAGE_JSON = {
    "name": "harness-demo",
    "displayName": "Harness demo",
    "description": "A throwaway extension that proves the editor test harness",
    "publisher": "devd-test",
    "version": "0.0.1",
    "engines": {"vscode": "^1.80.0"},
    "main": "./extension.js",
    "activationEvents": ["onStartupFinished"],
    "contributes": {
        "commands": [{"command": "harnessDemo.show", "title": "Harness Demo: Show Panel"}],
        "keybindings": [{"command": "harnessDemo.show", "key": "ctrl+alt+s",
                         "when": "editorLangId == python"}],
        "configuration": {"properties": {"harnessDemo.greeting": {
            "type": "string", "default": "hello"}}},
    },
}

EXTENSION_JS = r"""
const vscode = require('vscode');

function activate(context) {
  const item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 100);
  item.text = 'harness-demo: ready';
  item.show();
  const problems = vscode.languages.createDiagnosticCollection('harness-demo');
  let panel;
  context.subscriptions.push(vscode.languages.registerHoverProvider('python', {
    provideHover(doc, pos) {
      const word = doc.getText(doc.getWordRangeAtPosition(pos));
      return new vscode.Hover(new vscode.MarkdownString(`harness hover: **${word}**`));
    }
  }), vscode.languages.registerCodeLensProvider('python', {
    provideCodeLenses(doc) {
      const lenses = [];
      for (let i = 0; i < doc.lineCount; i++) {
        const m = /def (\w+)/.exec(doc.lineAt(i).text);
        if (m) lenses.push(new vscode.CodeLens(doc.lineAt(i).range,
          {title: `spin ${m[1]}`, command: 'harnessDemo.show'}));
      }
      return lenses;
    }
  }));
  const log = vscode.window.createOutputChannel('Harness Demo', {log: true});
  log.info('harness demo activated');
  const show = () => {
    const editor = vscode.window.activeTextEditor;
    const line = editor ? editor.selection.active.line + 1 : 0;
    const file = editor ? editor.document.fileName.split('/').pop() : 'none';
    const greeting = vscode.workspace.getConfiguration('harnessDemo').get('greeting');
    const mark = process.env.DEVD_HARNESS_MARK || 'unset';
    if (!panel) {
      panel = vscode.window.createWebviewPanel('harnessDemo', 'Harness Demo',
        {viewColumn: vscode.ViewColumn.Beside, preserveFocus: true}, {enableScripts: true});
      panel.onDidDispose(() => { panel = undefined; });
    }
    const card = '<p>card in a sandboxed frame</p><script>' +
      'document.body.append("card script ran")</script>';
    panel.webview.html = `<!DOCTYPE html><html><body>
      <h1>${greeting} from the webview</h1>
      <p>spin of line ${line} in ${file}, mark ${mark}</p>
      <iframe sandbox="allow-scripts" srcdoc="${card.replace(/"/g, '&quot;')}"></iframe>
      </body></html>`;
    item.text = `harness-demo: shown line ${line}`;
    if (editor) {
      const range = editor.document.lineAt(line - 1).range;
      problems.set(editor.document.uri, [new vscode.Diagnostic(range,
        'harness demo problem', vscode.DiagnosticSeverity.Error)]);
    }
    vscode.window.showInformationMessage(`Harness demo: panel shown for line ${line}`);
  };
  context.subscriptions.push(item, problems, log,
    vscode.commands.registerCommand('harnessDemo.show', show));
}

function deactivate() {}
module.exports = {activate, deactivate};
"""

FLOW_PY = """\
from metaflow import FlowSpec, step


class DemoFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        print(self.x)


if __name__ == "__main__":
    DemoFlow()
"""


@pytest.fixture(scope="module")
def tools():
    found, why = find_editor_tools()
    if found is None:
        pytest.skip(f"no editor tools: {why}")
    return found


def write_extension(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps(PACKAGE_JSON, indent=2))
    (root / "extension.js").write_text(EXTENSION_JS)
    return root


def test_playwright_key_names() -> None:
    assert playwright_key("ctrl+alt+s") == "Control+Alt+S"
    assert playwright_key("ctrl+shift+`") == "Control+Shift+Backquote"
    assert playwright_key("f1") == "F1"
    assert playwright_key("Enter") == "Enter"


def test_zip_vsix_installs(tools, tmp_path: Path) -> None:
    """The hand-made .vsix (no vsce) is one code-server installs."""
    vsix = zip_vsix(write_extension(tmp_path / "ext"), tmp_path / "demo.vsix")
    names = zipfile.ZipFile(vsix).namelist()
    assert {"extension.vsixmanifest", "[Content_Types].xml", "extension/package.json",
            "extension/extension.js"} <= set(names)
    server = CodeServer(None, tmp_path, tools=tools, base_dir=tmp_path / "cs")
    server.install_extension(vsix)
    installed = server.extensions_dir / "devd-test.harness-demo-0.0.1"
    assert (installed / "extension.js").read_text() == EXTENSION_JS


def test_keybinding_webview_status_bar_terminal(tools, tmp_path: Path) -> None:
    started = time.monotonic()
    vsix = package_vsix(write_extension(tmp_path / "ext"), tmp_path / "demo.vsix", tools)
    assert zipfile.ZipFile(vsix).read("extension/extension.js").decode() == EXTENSION_JS
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "demo_flow.py").write_text(FLOW_PY)
    settings = {"harnessDemo.greeting": "howdy"}
    with CodeServer(vsix, workspace, settings, env={"DEVD_HARNESS_MARK": "m-42"},
                    tools=tools, base_dir=tmp_path / "cs") as server, \
            open_workbench(server, artifacts=tmp_path) as wb:
        assert server.url.startswith("http://127.0.0.1:")
        written = json.loads((server.user_data_dir / "User" / "settings.json").read_text())
        assert written == {**BASE_SETTINGS, **settings}
        wb.wait_for_status_text("harness-demo: ready")

        wb.open_file("demo_flow.py")
        wb.goto_line(7, 14)
        assert "self.x = 1" in wb.editor_text()
        assert "harness hover: x" in wb.hover_text()
        wb.goto_line(7, 9)
        assert "harness hover: self" in wb.hover_text()
        wb.wait_until(lambda: len(wb.codelens_texts()) == 2, "two code lenses")
        assert wb.codelens_texts() == ["spin start", "spin end"]
        wb.press("ctrl+alt+s")
        text = wb.wait_for_webview_text("howdy from the webview")
        assert "spin of line 7 in demo_flow.py, mark m-42" in text
        # The card's sandboxed srcdoc iframe is a frame of its own, its script ran.
        card = wb.wait_for_webview_text("card in a sandboxed frame")
        assert "card script ran" in card
        assert "harness-demo: shown line 7" in wb.wait_for_status_text("shown line")
        assert "harness-demo: shown line 7" in wb.status_bar_text()
        note = wb.wait_for_notification("panel shown for line 7")
        assert "Harness demo" in note
        assert "harness demo activated" in server.output_channel("Harness Demo")
        wb.wait_until(lambda: wb.squiggles("error") >= 1, "the error squiggle")
        assert "harness demo problem" in wb.problems_text()

        # The palette runs a command by title; typing lands in the editor, as typed.
        wb.click_editor()
        wb.goto_line(9)
        wb.type("    # typed (by the harness)\n")
        wb.save()
        wb.wait_until(lambda: "# typed (by the harness)\n\n" in
                      (workspace / "demo_flow.py").read_text(), "the typed line saved")
        assert "    # typed (by the harness)" in wb.editor_text()
        wb.goto_line(3)
        wb.run_command("Harness Demo: Show Panel")
        wb.wait_for_status_text("shown line 3")
        assert any("line 7" in n for n in wb.notification_center_text())

        wb.open_terminal()
        out = wb.terminal_run("echo devd-$((6*7)) $DEVD_HARNESS_MARK", expect="devd-42 m-42")
        assert "devd-42 m-42" in out

        shot = wb.screenshot(tmp_path / "harness.png")
        assert shot.stat().st_size > 10_000
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SHOTS / "vscode_harness.png")
        pid = server.proc.pid
    assert server.proc is None
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert time.monotonic() - started < 180
