"""`devd: Show Flow` in a real VS Code (code-server in headless Chromium) (issue 20).

A flow with a branch and a foreach, run once for real: the view draws every step with its
state from the run (`data-state`), an edited step turns stale, a node's Spin spins it (the
card pane follows, in the column right of the view), a node's Open Card shows the run's task
(a foreach body's split picked first), Ctrl+Alt+R moves the nodes through the run, a click on
a node jumps to its step. Screenshots (light and dark, the view beside the pane) go to
out/screenshots/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from vscode_harness import CodeServer, Workbench, extension_vsix, find_editor_tools, open_workbench

pytestmark = pytest.mark.editor

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "out" / "screenshots"
VENV_BIN = Path(sys.executable).parent
FLOW = "view_flow.py"
SOURCE = '''\
import time

from metaflow import FlowSpec, step


class ViewFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "left"
        self.next(self.meet)

    @step
    def right(self):
        self.side = "right"
        self.next(self.meet)

    @step
    def meet(self, inputs):
        self.items = inputs[0].items
        self.next(self.fan)

    @step
    def fan(self):
        self.next(self.body, foreach="items")

    @step
    def body(self):
        time.sleep(0.5)
        self.sq = self.input ** 2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ViewFlow()
'''
STEPS = ["start", "left", "right", "meet", "fan", "body", "gather", "end"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flowview")
    (root / FLOW).write_text(SOURCE)
    subprocess.run([sys.executable, FLOW, "run"], cwd=root, check=True, capture_output=True,
                   timeout=300)
    return root


@pytest.fixture(scope="module")
def wb(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    tools, why = find_editor_tools()
    if tools is None:
        pytest.skip(f"no editor tools: {why} (make editor-tools installs them)")
    runtime = tmp_path_factory.mktemp("rt")
    env = {
        "USER": os.environ.get("USER", "devd-test"),
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
        "DEVD_RUNTIME_DIR": str(runtime),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    settings = {"devd.pythonPath": sys.executable, "workbench.colorTheme": "Default Light Modern"}
    vsix = Path(os.environ["DEVD_TEST_VSIX"]) if os.environ.get("DEVD_TEST_VSIX") \
        else extension_vsix()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with CodeServer(vsix, workspace, settings, env, tools=tools) as server, \
            open_workbench(server, artifacts=SHOTS) as bench:
        bench.open_file(FLOW)
        bench.click_editor()
        try:
            yield bench
        finally:
            subprocess.run([sys.executable, "-m", "devd.cli", "daemon", "stop",
                            str(workspace)], env={**os.environ, **env}, capture_output=True,
                           timeout=60)


def graph_frame(wb: Workbench) -> Any:
    """The flow view's page, once it drew its nodes."""
    def find() -> Any:
        for frame in wb.page.frames:
            try:
                if frame.evaluate("() => document.querySelectorAll('.node[data-step]').length"):
                    return frame
            except Exception:  # a frame navigating away: look again
                continue
        return None
    return wb.wait_until(find, "the flow view's nodes", timeout=60)


def states(frame: Any) -> dict[str, dict[str, str]]:
    return frame.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.node')]
        .map(n => [n.dataset.step, {state: n.dataset.state, stale: n.dataset.stale,
                                    text: n.innerText}]))""")


def test_show_flow_draws_every_step_with_its_state_from_the_run(wb: Workbench) -> None:
    wb.run_command("devd: Show Flow")
    frame = graph_frame(wb)
    nodes = wb.wait_until(lambda: states(frame) if len(states(frame)) == len(STEPS) else None,
                          "every step drawn")
    assert set(nodes) == set(STEPS)
    assert {n["state"] for n in nodes.values()} == {"ok"}, nodes
    assert "ok 3/3" in nodes["body"]["text"]  # the foreach's splits counted
    tabs = wb.page.eval_on_selector_all(".tab .label-name", "els => els.map(e => e.innerText)")
    assert "devd flow: ViewFlow" in tabs, tabs
    edges = frame.evaluate("() => document.querySelectorAll('path.edge').length")
    assert edges == 8  # start->left,right; left,right->meet; ->fan; ->body; ->gather; ->end
    wb.screenshot(SHOTS / "vscode-flow-light.png")
    frame.locator('.node[data-step="body"]').hover()  # its buttons show
    buttons = frame.evaluate("""() => [...document.querySelectorAll(
        '.node[data-step="body"] .actions button')].map(b => b.dataset.action)""")
    assert buttons == ["spin", "debug", "resume", "card", "split"], buttons
    wb.screenshot(SHOTS / "vscode-flow-node-buttons.png")


def test_an_edited_step_turns_stale(wb: Workbench, workspace: Path) -> None:
    wb.click_editor(FLOW)
    source = (workspace / FLOW).read_text()
    (workspace / FLOW).write_text(source.replace("self.input ** 2", "self.input ** 3"))
    frame = graph_frame(wb)
    wb.wait_until(lambda: states(frame)["body"]["stale"] == "true" or None,
                  "the edited step marked stale", timeout=60)
    assert states(frame)["left"]["stale"] == "false"
    (workspace / FLOW).write_text(source)


def test_a_nodes_spin_button_spins_that_step(wb: Workbench) -> None:
    frame = graph_frame(wb)
    frame.evaluate("() => document.querySelector('.node[data-step=\"left\"] "
                   "button[data-action=\"spin\"]').click()")
    wb.wait_for_webview_text("ViewFlow/left", timeout=120)  # the card pane shows the spin
    wb.wait_until(lambda: "spun ok" in states(graph_frame(wb))["left"]["text"] or None,
                  "the node shows its last spin", timeout=60)


def front(wb: Workbench) -> Any:
    """The flow view, shown again from the editor (Show Flow reveals it where it is)."""
    if wb.page.locator(".context-view .monaco-menu").count():  # a menu a failure left open
        wb.page.keyboard.press("Escape")
    wb.click_editor(FLOW)
    wb.run_command("devd: Show Flow")
    return graph_frame(wb)


def context_menu(wb: Workbench, step: str) -> list[str]:
    """Right-click the node of ``step``: the entries of the menu VS Code opens."""
    frame = front(wb)
    frame.locator(f'.node[data-step="{step}"] .name').click(button="right")
    menu = ".context-view .monaco-menu .action-item:not(.disabled) .action-label"
    wb.wait_for_selector(menu)
    labels = wb.page.eval_on_selector_all(
        menu, "els => els.map(e => e.getAttribute('aria-label') || e.innerText)")
    return [t.strip() for t in labels if t.strip()]


def click_menu(wb: Workbench, label: str) -> None:
    """Click an entry of the open context menu; again if the menu is still there after a
    while (on a busy machine a click landing while VS Code lays the menu out is lost)."""
    entry = wb.page.locator(".context-view .monaco-menu .action-item .action-label",
                            has_text=label).first
    for _ in range(3):
        entry.click()
        try:
            wb.page.locator(".context-view .monaco-menu").wait_for(state="hidden",
                                                                   timeout=3000)
            return
        except PlaywrightTimeout:  # still open: the click was lost, click again
            continue
    raise AssertionError(f"the context menu stayed open after clicking '{label}'")


def shown_run(wb: Workbench) -> str:
    """The run the flow view shows (its header: `run ID · ok`)."""
    text = graph_frame(wb).evaluate("() => document.getElementById('run').innerText")
    found = re.match(r"run (\d+)", text)
    assert found, text
    return found.group(1)


def recorded_card(wb: Workbench, run: str, step: str) -> str:
    """The pane's text once it shows the task of ``step`` in ``run`` as Metaflow stored it
    (not a spin's page, which names that task as the one it is compared with)."""
    pattern = re.compile(rf"the recorded task ViewFlow/{run}/{step}/\d+, as Metaflow stored it")
    return wb.wait_until(lambda: next((t for t in wb.webview_texts() if pattern.search(t)),
                                      None), f"the pane showing {step}'s task of run {run}",
                         timeout=120)


def test_a_nodes_context_menu_opens_its_card_and_picks_a_split(wb: Workbench) -> None:
    """Right-click a node: Spin, Debug, Resume From Here, Open Card (the run's task, as
    Metaflow recorded it), Open Last Spin's Card, and for a foreach body Spin a Split… (by
    index or input value: typing the input picks the split)."""
    run = shown_run(wb)
    entries = context_menu(wb, "right")
    assert {"Spin", "Debug", "Resume From Here", "Open Card",
            "Open Last Spin's Card"} <= set(entries), entries
    assert "Spin a Split…" not in entries  # not inside a foreach
    click_menu(wb, "Open Card")
    recorded_card(wb, run, "right")
    assert "spun" not in states(graph_frame(wb))["right"]["text"]  # no spin made for it
    assert "Spin a Split…" in context_menu(wb, "body")
    click_menu(wb, "Spin a Split…")
    def split_rows() -> list[str] | None:
        rows = [r.inner_text().replace("\n", " ") for r in wb._rows()]
        return rows if len(rows) == 3 and all(r.startswith("split") for r in rows) else None

    rows = wb.wait_until(split_rows, "the split picker's three rows")
    assert all(f"input {v}" in " ".join(rows) for v in (1, 2, 3)), rows
    wb.type("input 3")  # the split by its input value
    wb.wait_until(lambda: len(wb._rows()) == 1 or None, "one split left")
    wb.press("Enter")
    wb.wait_for_webview_text("split 2 of 3 · input 3", timeout=120)  # the pane: that split


def test_open_card_shows_the_runs_task_and_the_last_spin_stays_one_entry_away(
        wb: Workbench) -> None:
    """A node spun since the run (left): Open Card shows the run's task, Open Last Spin's
    Card the spin; a foreach body's Open Card asks which split's task first."""
    run = shown_run(wb)
    assert "spun ok" in states(graph_frame(wb))["left"]["text"]
    context_menu(wb, "left")
    click_menu(wb, "Open Card")
    recorded_card(wb, run, "left")
    context_menu(wb, "left")
    click_menu(wb, "Open Last Spin's Card")
    wb.wait_for_webview_text(f"compared with the recorded task ViewFlow/{run}/left/",
                             timeout=120)
    context_menu(wb, "body")
    click_menu(wb, "Open Card")

    def split_rows() -> list[str] | None:
        rows = [r.inner_text().replace("\n", " ") for r in wb._rows()]
        return rows if len(rows) == 3 and all(r.startswith("split") for r in rows) else None

    wb.wait_until(split_rows, "the body's three tasks to pick from")
    wb.type("input 2")
    wb.wait_until(lambda: len(wb._rows()) == 1 or None, "one split left")
    wb.press("Enter")
    text = recorded_card(wb, run, "body")
    assert re.search(r"sq\s+int\s+4\b", text), text  # split 1: input 2, 2 ** 2


def group_tabs(wb: Workbench) -> list[str]:
    """The active tab of each editor group, left to right."""
    return wb.page.eval_on_selector_all(
        ".editor-group-container",
        "els => els.map(g => { const t = g.querySelector("
        "'.tab.active, .tab[aria-selected=\"true\"]');"
        " return t ? (t.getAttribute('aria-label') || t.innerText).split(',')[0].trim() : ''; })")


def side_by_side(wb: Workbench) -> list[str]:
    """The editor, the flow view and the pane each in front in its own group."""
    def shown() -> list[str] | None:
        tabs = group_tabs(wb)
        flow = [i for i, t in enumerate(tabs) if t.startswith("devd flow:")]
        pane = [i for i, t in enumerate(tabs) if t.startswith("devd:")]
        return tabs if FLOW in tabs and flow and pane and flow[0] < pane[0] else None
    try:
        return wb.wait_until(shown, "the flow view and the card pane side by side", timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"each group's tab in front: {group_tabs(wb)}") from exc


def test_the_flow_view_and_the_pane_show_side_by_side(wb: Workbench) -> None:
    """A node's Spin opens the pane right of the flow view, not over it; Show Flow with the
    pane open beside the editor moves the pane right of the flow view."""
    front(wb)
    frame = graph_frame(wb)
    frame.evaluate("() => document.querySelector('.node[data-step=\"meet\"] "
                   "button[data-action=\"spin\"]').click()")
    wb.wait_for_webview_text("ViewFlow/meet", timeout=120)
    tabs = side_by_side(wb)
    assert tabs.index(FLOW) == 0, tabs
    wb.page.wait_for_timeout(1000)
    wb.screenshot(SHOTS / "vscode-flow-beside-pane.png")
    tab = wb.page.locator(".tab", has_text="devd flow: ViewFlow").first  # close the view
    tab.hover()
    tab.locator(".tab-actions .action-label").first.click()
    wb.wait_until(lambda: not any(t.startswith("devd flow") for t in group_tabs(wb)) or None,
                  "the flow view closed")
    wb.click_editor(FLOW)
    wb.run_command("devd: Show Flow")  # beside the editor, where the pane is now
    graph_frame(wb)
    side_by_side(wb)


def test_the_panes_show_flow_button_opens_the_view(wb: Workbench) -> None:
    front(wb)
    tab = wb.page.locator(".tab", has_text="devd flow: ViewFlow").first
    tab.hover()
    tab.locator(".tab-actions .action-label").first.click()  # its close button
    wb.wait_until(lambda: not any("devd flow" in t for t in wb.page.eval_on_selector_all(
        ".tab .label-name", "els => els.map(e => e.innerText)")) or None, "the flow view closed")
    pane = wb.webview_frame("Show flow")
    pane.locator('button[data-action="showFlow"]').first.click()
    assert len(states(graph_frame(wb))) == len(STEPS)


def test_run_flow_moves_the_nodes_and_a_click_jumps_to_the_step(wb: Workbench) -> None:
    """Ctrl+Alt+R: the nodes pass through running to ok as the daemon pushes the run's task
    records (devd/runProgress), each node in place."""
    wb.click_editor(FLOW)
    frame = graph_frame(wb)
    frame.evaluate("""() => { window.seen = {};
        const note = (n) => { const s = (window.seen[n.dataset.step] ||= []);
                              if (s[s.length - 1] !== n.dataset.state) s.push(n.dataset.state); };
        document.querySelectorAll('.node').forEach(note);
        new MutationObserver((ms) => ms.forEach((m) => m.type === 'attributes' ? note(m.target)
            : m.addedNodes.forEach((n) => n.classList && n.classList.contains('node') && note(n))))
          .observe(document.getElementById('stage'), {attributes: true, childList: true,
                                                     subtree: true,
                                                     attributeFilter: ['data-state']}); }""")
    wb.press("Control+Alt+r")

    def finished() -> Any:
        seen = frame.evaluate("() => window.seen")
        return seen if seen["end"][-1:] == ["ok"] and "running" in seen["end"] else None

    seen = wb.wait_until(finished, "the run's states reaching the view", timeout=180)
    for step in STEPS:  # every node ends ok, never going back once running
        assert seen[step][-1] == "ok", (step, seen)
        assert seen[step][-2:] == ["running", "ok"] or "running" not in seen[step], (step, seen)
    # a step whose task takes a while is seen running (a trivial one may start and end
    # between two reads of the task records, 0.1 s apart, and go straight to ok)
    assert seen["body"][-2:] == ["running", "ok"], seen
    assert sum("running" in seen[step] for step in STEPS) >= len(STEPS) // 2, seen
    frame = graph_frame(wb)
    frame.evaluate("() => document.querySelector('.node[data-step=\"gather\"]').click()")
    line = SOURCE.splitlines().index("    def gather(self, inputs):") + 1
    wb.wait_until(lambda: f"Ln {line}," in wb.status_bar_text() or None,
                  f"the editor's cursor on line {line} (def gather)")
    wb.run_command("Preferences: Toggle between Light/Dark Themes")
    wb.run_command("devd: Show Flow")
    graph_frame(wb)
    wb.page.wait_for_timeout(1000)
    wb.screenshot(SHOTS / "vscode-flow-dark.png")


def tree_rows(wb: Workbench) -> list[str]:
    return wb.page.eval_on_selector_all(
        "#workbench\\.view\\.extension\\.devd .monaco-list-row",
        "els => els.map(e => e.innerText.replace(/\\n/g, ' '))")


def click_row(wb: Workbench, starts: str) -> None:
    rows = wb.page.locator("#workbench\\.view\\.extension\\.devd .monaco-list-row")
    for i in range(rows.count()):
        if rows.nth(i).inner_text().replace("\n", " ").startswith(starts):
            rows.nth(i).click()
            return
    raise AssertionError(f"no row starting {starts!r} in {tree_rows(wb)}")


def test_the_runs_tree_goes_from_runs_to_a_tasks_artifacts(wb: Workbench) -> None:
    """Metaflow Runs: flow → runs (newest first) → steps → tasks (split and input) →
    artifacts; a task spins from its context menu."""
    wb.page.locator(".activitybar .action-item a[aria-label^='devd']").first.click()
    wb.wait_until(lambda: any(r.startswith(FLOW) for r in tree_rows(wb)) or None,
                  "the flow in the runs tree")
    runs = wb.wait_until(lambda: [r for r in tree_rows(wb) if re.match(r"\d+\s*ok ·", r)] or None,
                         "the flow's runs")
    click_row(wb, re.match(r"\d+", runs[0]).group(0))
    wb.wait_until(lambda: any(r.startswith("body") and "3/3 tasks" in r for r in tree_rows(wb))
                  or None, "the run's steps")
    click_row(wb, "body")
    wb.wait_until(lambda: any(r.startswith("split 2 · 3") for r in tree_rows(wb)) or None,
                  "the body's tasks with their splits", timeout=20)
    click_row(wb, "split 1 · 2")
    wb.wait_until(lambda: any(r.startswith("sq") and "int · 4" in r for r in tree_rows(wb))
                  or None, "the task's artifacts (split 1's input 2: sq = 4)")
    wb.screenshot(SHOTS / "vscode-runs-tree.png")
