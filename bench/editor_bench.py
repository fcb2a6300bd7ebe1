"""Key to pixels in a real VS Code: Ctrl+Alt+S in a step → the card pane shows the new card.

code-server (the real VS Code workbench, `make editor-tools`) in Debian's headless Chromium
with the devd extension from `make vsix`, on examples/hello_flow.py with one recorded run.
The daemon is warmed first (a few spins), then ``--presses`` key presses on ``train``'s body,
half a second apart as between edits. Each sample runs from just before the key press (the
workbench's clock) to the moment the new spin's card is on screen (the card frame's load
event, or the animation frame after the frame took the new data in place; same clock
origin): the extension's request, the daemon's spin, the
preview page and the card in the pane, all included.

With ``--only flow`` (or by default, after the above), the flow view (issue 20) on a 50-step
flow (bench/flowfixture.py): Ctrl+Alt+R with the graph open, each node's change (running,
then ok) against the time Metaflow recorded it (the task's registration, its ``_task_ok``
artifact); then 999 more runs made from that one (hard links, seconds), and `devd: Show Flow`
→ the graph on screen (the page's animation frame after it drew and VS Code showed it, same
clock) with 1,000 runs, the view closed before each sample (a new webview each time; split
into VS Code starting the view's webview frame, our page running in that frame, the graph
there, on screen), and VS Code's floor for it: bench/emptyview's webview, made as the flow
view's, with a page that does nothing; then with the view left open beside (reveal and
redraw); the runs tree's first level: its first open (activity bar click → its run rows,
mostly VS Code opening its sidebar), then with the view open, collapsing and expanding the
flow's node (VS Code's cached rows) and pressing Refresh while it is collapsed
before expanding it (devd/runs asked anew); and the daemon's answers behind them (devd/graph,
devd/runs of 51) from a client like the extension's.

In the same run, for comparison: `devd spin hello_flow.py train` typed in a terminal
against the same warm daemon (whole process), and Metaflow's own
`python hello_flow.py spin train`. Also printed: the extension's activation time (its own
log line), the time from opening the flow to the daemon being ready, and the .vsix size.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

import flowfixture  # noqa: E402
from vscode_harness import CodeServer, find_editor_tools, open_workbench, zip_vsix  # noqa: E402

TARGET_MS = 150.0
FLOW = "hello_flow.py"
TRAIN_BODY = 20

NOW = "() => performance.timeOrigin + performance.now()"
# The card on screen, on the epoch clock shared by all frames: when its document's load
# event ended, or, when the frame took the new spin's data in place (cards/preview.js),
# the animation frame after the card re-rendered (its live bridge notes it).
SHOWN = ("() => { const n = performance.getEntriesByType('navigation')[0];"
         " const loaded = n && n.loadEventEnd ? performance.timeOrigin + n.loadEventEnd : 0;"
         " return Math.max(loaded, Number(document.body.dataset.devdShownAt || 0)); }")
CARD_ID = re.compile(r"HelloFlow/(\S+)/train/\d+")
# In the pane's page: when each new preview arrives from the extension (epoch ms).
LISTEN = ("() => { window.devdBenchArrivals = []; window.addEventListener('message', e => {"
          " if (e.data && e.data.type === 'devd/preview') window.devdBenchArrivals.push("
          "performance.timeOrigin + performance.now()); }); }")


def preview_frame(page):
    """The pane's page (the frame holding the artifacts table), not a card inside it."""
    for frame in page.frames:
        try:
            if frame.evaluate("() => !!document.getElementById('artifacts')"):
                return frame
        except Exception:
            continue
    raise SystemExit("no card pane found")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def card_frame(page, seen: set[str], since: float):
    """The card frame of a spin not seen before, once it is on screen (after ``since``)."""
    for frame in page.frames:
        try:
            text = frame.evaluate("() => document.body ? document.body.innerText : ''")
        except Exception:
            continue
        match = CARD_ID.search(text or "")
        if match and "Trained with rate" in text and match.group(0) not in seen:
            shown = frame.evaluate(SHOWN)
            if shown > since:
                return match.group(0), shown
    return None


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed * 1000


FLOW_TARGETS = {"show": 300.0, "live": 500.0, "tree": 200.0}
# Every node's data-state as it changes (epoch ms), new nodes (a redraw) included.
WATCH_STATES = """() => { window.devdStates = [];
  const note = (n) => window.devdStates.push([n.dataset.step, n.dataset.state,
                                              performance.timeOrigin + performance.now()]);
  new MutationObserver((ms) => ms.forEach((m) => m.type === 'attributes' ? note(m.target)
      : m.addedNodes.forEach((n) => n.classList && n.classList.contains('node') && note(n))))
    .observe(document.getElementById('stage'), {attributes: true, childList: true,
                                                subtree: true, attributeFilter: ['data-state']});
}"""
# In the workbench: the time (epoch ms) once the runs view shows its run rows (20: as many
# as it has room for; the tree renders only the rows in view), else 0.
TREE_VIEW = '[id="workbench.view.extension.devd"]'
TREE_SHOWN = """() => {
  const view = '[id="workbench.view.extension.devd"] .monaco-list-row';
  const rows = [...document.querySelectorAll(view)].filter((r) => /\\d{6,}/.test(r.innerText));
  return rows.length >= 20 ? performance.timeOrigin + performance.now() : 0;
}"""
RECORDED = """import json, sys
from metaflow import Run
run = Run(sys.argv[1], _namespace_check=False)
out = {}
for step in run:
    tasks = list(step)
    out[step.id] = [min(t.created_at.timestamp() for t in tasks) * 1000,
                    max(t.finished_at.timestamp() for t in tasks) * 1000]
print(json.dumps(out))
"""


def flow_frame(page, steps: int):
    """The flow view's page once it drew ``steps`` nodes, else None."""
    for frame in page.frames:
        try:
            if frame.evaluate("() => document.querySelectorAll('.node[data-step]').length") \
                    == steps and frame.evaluate("() => !!document.body.dataset.drawnAt"):
                return frame
        except Exception:
            continue
    return None


def close_flow_view(wb, title: str = "devd flow:") -> None:
    tab = wb.page.locator(".tab", has_text=title).first
    if tab.count():
        tab.hover()
        tab.locator(".tab-actions .action-label").first.click()
        wb.wait_until(lambda: not wb.page.locator(".tab", has_text=title).count()
                      or None, f"the view {title!r} closed", 30)


def palette_show_flow(wb, command: str = "devd: Show Flow") -> float:
    """`devd: Show Flow` (or ``command``) from the palette with the flow's editor focused: the
    time (epoch ms) just before the command's row is clicked."""
    wb.click_editor(flowfixture.FLOW_FILE)
    wb._close_quick_input()
    wb._quick_input("f1").fill(">" + command)
    row = wb.wait_until(lambda: next((r for r in wb._rows() if r.inner_text().split("\n")[0]
                                      .strip() == command), None), "the command", 30)
    start = wb.page.evaluate(NOW)
    row.click()
    return start


# bench/emptyview: a webview made as the flow view's, whose page does nothing (VS Code's floor).
EMPTY_VIEW = "devd bench: Empty View Beside"
EMPTY_SHOWN = ("() => document.body && document.body.dataset.benchEmpty"
               " ? Number(document.body.dataset.drawnAt || 0) : 0")


def empty_view_sample(wb) -> float:
    """bench/emptyview's command from the palette → its empty page on screen (ms), its view
    closed first: VS Code's own part of a new flow view."""
    close_flow_view(wb, "bench: empty view")
    start = palette_show_flow(wb, EMPTY_VIEW)

    def shown() -> float | None:
        for frame in wb.page.frames:
            try:
                at = frame.evaluate(EMPTY_SHOWN)
            except Exception:
                continue
            if at:
                return at
        return None

    return wb.wait_until(shown, "the empty view", 60, interval=0.02) - start


# In a webview's host frame (VS Code's webview/browser/pre/index.html, our page's parent): when
# VS Code started loading it (epoch ms).
HOST_STARTED = "() => performance.timeOrigin"


def show_flow_sample(wb, steps: int) -> tuple[float, float, float, float, float]:
    """`devd: Show Flow` from the palette → the graph on screen (ms), the view closed first;
    and its parts: → VS Code starts the view's webview frame, → our page's script runs in
    it, → the graph is there, → on screen."""
    close_flow_view(wb)
    start = palette_show_flow(wb)
    frame = wb.wait_until(lambda: flow_frame(wb.page, steps), "the graph", 60, interval=0.02)
    at = frame.evaluate("() => [document.body.dataset.startedAt, document.body.dataset.graphAt,"
                        " document.body.dataset.drawnAt].map(Number)")
    host = frame.parent_frame.evaluate(HOST_STARTED)
    return at[2] - start, host - start, at[0] - host, at[1] - at[0], at[2] - at[1]


def show_open_flow_sample(wb, steps: int) -> tuple[float, float]:
    """`devd: Show Flow` with the view already open in the other column → the graph redrawn
    (ms): the panel's reveal, devd/graph again and the page's redraw (its next frame); and of
    it, → the new graph reaching the page."""
    frame = flow_frame(wb.page, steps)
    if frame is None:
        raise SystemExit("the flow view is not open")
    start = palette_show_flow(wb)
    drawn = "() => Number(document.body.dataset.drawnAt || 0)"
    at = wb.wait_until(lambda: (lambda t: t if t > start else None)(frame.evaluate(drawn)),
                       "the graph redrawn", 60, interval=0.02)
    return at - start, frame.evaluate("() => Number(document.body.dataset.graphAt)") - start


def tree_sample(wb, refresh: bool) -> float | None:
    """The runs view open: collapse the flow's node, then expand it → its newest run rows on
    screen (ms). Collapse → expand alone shows the tree's cached rows (VS Code asks the
    extension again only for a stale node); with ``refresh`` the view's Refresh button is
    pressed while the node is collapsed, so expanding asks devd/runs anew (None when VS Code
    expanded the node on its own at the refresh: no sample)."""
    row = wb.page.locator(f"{TREE_VIEW} .monaco-list-row[aria-level='1']").first
    if row.get_attribute("aria-expanded") == "true":
        row.locator(".monaco-tl-twistie").click()
    wb.wait_until(lambda: not wb.page.evaluate(TREE_SHOWN) or None, "the runs hidden", 30)
    if refresh:
        wb.page.locator(".part.sidebar").hover()
        wb.page.locator(".part.sidebar a.action-label[aria-label^='Refresh']").first.click()
        time.sleep(0.5)  # the root's children again; the collapsed flow is marked stale
        if row.get_attribute("aria-expanded") == "true":
            return None
    start = wb.page.evaluate(NOW)
    row.locator(".monaco-tl-twistie").click()
    shown = wb.wait_until(lambda: wb.page.evaluate(TREE_SHOWN) or None,
                          "the runs in the tree", 60, interval=0.01)
    return shown - start  # polled: a few ms late at most


def daemon_timings(ws: Path, env: dict[str, str], samples: int) -> tuple[list[float], list[float]]:
    """devd/graph and devd/runs (limit 51, the tree's first page) from a client like the
    extension's, against the warm daemon: the daemon's share of the two."""
    from devd.cli.client import file_uri
    from devd.cli.daemons import daemon_for

    os.environ["DEVD_RUNTIME_DIR"] = env["DEVD_RUNTIME_DIR"]
    uri = file_uri(str(ws / flowfixture.FLOW_FILE))
    graph, runs = [], []
    client = daemon_for(str(ws))
    if client is None:
        raise SystemExit("the editor's daemon is not running")
    with client:
        for _ in range(samples):
            began = time.perf_counter()
            answer = client.request("devd/graph", {"uri": uri})
            graph.append((time.perf_counter() - began) * 1000)
            assert answer["ok"] and len(answer["nodes"]) == 50, answer
            began = time.perf_counter()
            answer = client.request("devd/runs", {"uri": uri, "limit": 51})
            runs.append((time.perf_counter() - began) * 1000)
            assert answer["ok"] and len(answer["runs"]) == 51, answer
    return graph, runs


def flow_bench(samples: int, vsix: Path, tools,
               python_env: dict[str, str]) -> list[tuple[str, list[float], str]]:
    """The flow view's figures: (what, samples in ms, target key)."""
    work = Path(tempfile.mkdtemp(prefix="devd-flow-bench-"))
    ws = work / "ws"
    ws.mkdir()
    flowfixture.write_flow(ws)
    env = {**python_env, "DEVD_RUNTIME_DIR": str(work / "rt")}
    (work / "rt").mkdir(mode=0o700)
    steps = 50
    rows: list[tuple[str, list[float], str]] = []
    try:
        # The view's title buttons (the runs tree's Refresh) shown without hovering.
        settings = {"devd.pythonPath": sys.executable,
                    "workbench.view.alwaysShowHeaderActions": True}
        empty = zip_vsix(HERE / "emptyview", work / "emptyview.vsix")
        with CodeServer([vsix, empty], ws, settings, env,
                        tools=tools) as server, open_workbench(server) as wb:
            wb.open_file(flowfixture.FLOW_FILE)
            wb.wait_until(lambda: "sync~spin" not in wb.status_bar_text()
                          and "devd" in wb.status_bar_text(), "the daemon ready", 120)
            wb.run_command("devd: Show Flow")
            frame = wb.wait_until(lambda: flow_frame(wb.page, steps), "the graph", 120)
            frame.evaluate(WATCH_STATES)
            wb.click_editor(flowfixture.FLOW_FILE)
            wb.press("ctrl+alt+r")
            wb.wait_for_notification("finished: run", timeout=1800)
            seen = frame.evaluate("() => window.devdStates")
            run_id = frame.evaluate("() => document.getElementById('run').textContent")
            run_id = re.search(r"run (\S+)", run_id).group(1)
            out = subprocess.run([sys.executable, "-c", RECORDED,
                                  f"{flowfixture.FLOW_NAME}/{run_id}"],
                                 cwd=ws, env=env, capture_output=True, text=True, check=True)
            recorded = json.loads(out.stdout)
            started, ended = [], []
            for step, (created, finished) in recorded.items():
                running = [t for s, state, t in seen if s == step and state == "running"]
                ok = [t for s, state, t in seen if s == step and state == "ok" and running
                      and t >= running[0]]
                if running:
                    started.append(running[0] - created)
                if ok:
                    ended.append(ok[0] - finished)
            rows.append(("a task starts → its node `running` (Ctrl+Alt+R, devd/runProgress)",
                         started, "live"))
            rows.append(("a step's last task ends → its node `ok`", ended, "live"))
            print(f"(live, ms: {rows[-2][1]} / {rows[-1][1]})", flush=True)
            took = flowfixture.copy_runs(ws, run_id)
            print(f"(999 more runs made from run {run_id} in {took:.1f} s: "
                  f"{flowfixture.runs_count(ws)} runs)", flush=True)
            parts = [show_flow_sample(wb, steps) for _ in range(samples + 2)][2:]
            show = [p[0] for p in parts]
            rows.append(("`devd: Show Flow` → graph on screen (50 steps, 1,000 runs)", show,
                         "show"))
            rows.append(("… of which: command → VS Code starts the view's webview frame "
                         "(its editor group, the frame's page)", [p[1] for p in parts], ""))
            rows.append(("… of which: webview frame → our page runs in it (VS Code's service "
                         "worker, an empty document, our HTML written in)", [p[2] for p in parts],
                         ""))
            rows.append(("… of which: page runs → the graph there (in the page when devd/graph "
                         "and the layout were ready, else by message)", [p[3] for p in parts],
                         ""))
            rows.append(("… of which: → on screen (drawn; VS Code shows a new page at its load "
                         "event)", [p[4] for p in parts], ""))
            print(f"(show flow, ms: {parts})", flush=True)
            close_flow_view(wb)
            floor = [empty_view_sample(wb) for _ in range(samples + 2)][2:]
            close_flow_view(wb, "bench: empty view")
            rows.append(("… VS Code's floor: the same from a page that does nothing "
                         "(bench/emptyview)", floor, ""))
            palette_show_flow(wb)
            wb.wait_until(lambda: flow_frame(wb.page, steps), "the graph", 120)
            again = [show_open_flow_sample(wb, steps) for _ in range(samples + 1)][1:]
            rows.append(("`devd: Show Flow` with the view open beside → graph redrawn "
                         "(reveal, devd/graph, redraw)", [a[0] for a in again], "show"))
            rows.append(("… of which: command → the new graph reaches the page (VS Code's "
                         "command, devd/graph, the layout, the message)", [a[1] for a in again],
                         ""))
            start = wb.page.evaluate(NOW)
            wb.page.locator(".activitybar .action-item a[aria-label^='devd']").first.click()
            shown = wb.wait_until(lambda: wb.page.evaluate(TREE_SHOWN) or None,
                                  "the runs in the tree", 60, interval=0.01)
            tree = [shown - start]  # polled: a few ms late at most
            rows.append(("runs tree, first open: activity bar click → the newest runs shown "
                         "(of 1,000; mostly VS Code opening its sidebar)", tree, "tree"))
            cached = [tree_sample(wb, False) for _ in range(samples + 1)][1:]
            rows.append(("runs tree open: collapse, expand the flow → its 50 newest runs shown "
                         "(VS Code's cached rows)", [t for t in cached if t is not None], "tree"))
            fresh = [tree_sample(wb, True) for _ in range(samples + 1)][1:]
            fresh_ok = [t for t in fresh if t is not None]
            if fresh_ok:
                rows.append(("runs tree open: Refresh, expand the flow → its 50 newest runs shown "
                             "(devd/runs anew)", fresh_ok, "tree"))
            else:
                print("(runs tree: VS Code expanded the flow on Refresh; no Refresh samples)",
                      flush=True)
            graph, runs = daemon_timings(ws, env, samples)
            rows.append(("… the daemon's devd/graph (50 steps, newest of 1,000 runs)", graph, ""))
            rows.append(("… the daemon's devd/runs (51 of 1,000 runs)", runs, "tree"))
    finally:
        subprocess.run([sys.executable, "-m", "devd.cli", "daemon", "stop", str(ws)], env=env,
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return rows


def print_flow(rows: list[tuple[str, list[float], str]]) -> None:
    med = statistics.median
    print("| flow view (issue 20) | n | median | p95 | target |")
    print("|---|---|---|---|---|")
    for name, samples, key in rows:
        target = f"≤ {FLOW_TARGETS[key]:.0f} ms: " + ("met" if med(samples) <= FLOW_TARGETS[key]
                                                       else "NOT met") if key else ""
        print(f"| {name} | {len(samples)} | {med(samples):.0f} ms | "
              f"{percentile(samples, 0.95):.0f} ms | {target} |")
    print()
    print("samples (ms):")
    for name, samples, _ in rows:
        print(f"  {name}: {' '.join(f'{s:.0f}' for s in samples)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--cli", type=int, default=20, help="terminal devd spin samples")
    parser.add_argument("--metaflow", type=int, default=5, help="metaflow spin samples")
    parser.add_argument("--only", choices=("all", "spin", "flow"), default="all")
    parser.add_argument("--flow-samples", type=int, default=10,
                        help="samples of each flow view figure (Show Flow, runs tree, daemon)")
    parser.add_argument("--vsix", help="the extension to measure (default: make vsix's); e.g. "
                        "an earlier commit's, for a before/after")
    args = parser.parse_args()

    tools, why = find_editor_tools()
    if tools is None:
        raise SystemExit(f"no editor tools: {why} (run make editor-tools)")
    version = json.loads((REPO / "vscode-extension/package.json").read_text())["version"]
    vsix = Path(args.vsix) if args.vsix else REPO / "vscode-extension" / f"devd-{version}.vsix"
    if not vsix.exists():
        subprocess.run(["make", "-C", str(REPO), "vsix"], check=True)

    user = os.environ.get("USER") or "devd"
    base_env = {**os.environ, "USER": "devd" if user == "root" else user,
                "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if args.only == "flow":
        print(f"# devd flow view benchmark ({time.strftime('%Y-%m-%d %H:%M')}, "
              f"{os.cpu_count()} cores, code-server in headless Chromium)")
        print()
        print_flow(flow_bench(args.flow_samples, vsix, tools, base_env))
        return 0
    work = Path(tempfile.mkdtemp(prefix="devd-editor-bench-"))
    ws = work / "ws"
    ws.mkdir()
    shutil.copy(REPO / "examples" / FLOW, ws / FLOW)
    env = {**base_env, "DEVD_RUNTIME_DIR": str(work / "rt")}
    (work / "rt").mkdir(mode=0o700)
    subprocess.run([sys.executable, FLOW, "run"], cwd=ws, env=env, check=True,
                   capture_output=True, timeout=300)

    presses: list[float] = []
    to_page: list[float] = []  # key → the new preview reaches the pane's page
    in_page: list[float] = []  # → the page applied it and the new card finished loading
    cli: list[float] = []
    metaflow: list[float] = []
    try:
        # The view's title buttons (the runs tree's Refresh) shown without hovering.
        settings = {"devd.pythonPath": sys.executable,
                    "workbench.view.alwaysShowHeaderActions": True}
        with CodeServer(vsix, ws, settings, env,
                        tools=tools) as server, open_workbench(server) as wb:
            opened = time.perf_counter()
            wb.open_file(FLOW)
            wb.wait_for_status_text("devd", timeout=120)
            wb.wait_until(lambda: "sync~spin" not in wb.status_bar_text()
                          and "devd" in wb.status_bar_text(), "the daemon ready", 120)
            ready_ms = (time.perf_counter() - opened) * 1000
            wb.click_editor()
            wb.goto_line(TRAIN_BODY)
            seen: set[str] = set()
            page = wb.page
            pane = None
            for i in range(args.presses + 3):  # 3 warm-up presses: parents warm, child prepared
                if i == 3:
                    pane = preview_frame(page)
                    pane.evaluate(LISTEN)
                start = page.evaluate(NOW)
                wb.press("ctrl+alt+s")
                card, loaded = wb.wait_until(lambda start=start: card_frame(page, seen, start),
                                             "the new card in the pane", 60)
                seen.add(card)
                if pane is not None:
                    arrived = pane.evaluate("() => window.devdBenchArrivals.slice(-1)[0]")
                    presses.append(loaded - start)
                    to_page.append(arrived - start)
                    in_page.append(loaded - arrived)
                time.sleep(0.5)
            for _ in range(args.cli):
                cli.append(timed(["devd", "spin", FLOW, "train"], ws, env))
                time.sleep(0.5)
            activation = re.findall(r"activated in (\d+) ms", server.output_channel("devd"))
        for _ in range(args.metaflow):
            metaflow.append(timed([sys.executable, FLOW, "spin", "train"], ws, env))
    finally:
        subprocess.run([sys.executable, "-m", "devd.cli", "daemon", "stop", str(ws)], env=env,
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    print(f"# devd editor benchmark ({time.strftime('%Y-%m-%d %H:%M')}, "
          f"{os.cpu_count()} cores, code-server in headless Chromium)")
    print()
    print("| what | n | median | p95 | vs metaflow spin |")
    print("|---|---|---|---|---|")
    mf = med(metaflow)
    rows = [("Ctrl+Alt+S → new card in the pane (warm daemon)", presses),
            ("… of which: key → new preview reaches the pane's page", to_page),
            ("… of which: page applies it → new card loaded", in_page),
            ("`devd spin hello_flow.py train` in a terminal (warm daemon, whole process)", cli),
            ("`python hello_flow.py spin train` (Metaflow's own)", metaflow)]
    for name, samples in rows:
        print(f"| {name} | {len(samples)} | {med(samples):.0f} ms | "
              f"{percentile(samples, 0.95):.0f} ms | {mf / med(samples):.1f}x |")
    print()
    print(f"- extension activation: {', '.join(activation) or '?'} ms (its own log line)")
    print(f"- open the flow → daemon ready (cold daemon start): {ready_ms:.0f} ms")
    print(f"- .vsix size: {vsix.stat().st_size / 1024:.0f} KB ({vsix.name})")
    print(f"- key-to-pixels target ≤ {TARGET_MS:.0f} ms median: "
          f"{'met' if med(presses) <= TARGET_MS else 'NOT met'} ({med(presses):.0f} ms)")
    print()
    print("samples (ms):")
    for name, samples in rows:
        print(f"  {name}: {' '.join(f'{s:.0f}' for s in samples)}")
    if args.only == "all":
        print()
        print_flow(flow_bench(args.flow_samples, vsix, tools, base_env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
