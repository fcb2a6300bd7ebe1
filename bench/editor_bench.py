"""Key to pixels in a real VS Code: Ctrl+Alt+S in a step → the card pane shows the new card.

code-server (the real VS Code workbench, `make editor-tools`) in Debian's headless Chromium
with the devd extension from `make vsix`, on examples/hello_flow.py with one recorded run.
The daemon is warmed first (a few spins), then ``--presses`` key presses on ``train``'s body,
half a second apart as between edits. Each sample runs from just before the key press (the
workbench's clock) to the moment the new spin's card is on screen (the card frame's load
event, or the animation frame after the frame took the new data in place; same clock
origin): the extension's request, the daemon's spin, the
preview page and the card in the pane, all included.

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

from vscode_harness import CodeServer, find_editor_tools, open_workbench  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--cli", type=int, default=20, help="terminal devd spin samples")
    parser.add_argument("--metaflow", type=int, default=5, help="metaflow spin samples")
    args = parser.parse_args()

    tools, why = find_editor_tools()
    if tools is None:
        raise SystemExit(f"no editor tools: {why} (run make editor-tools)")
    version = json.loads((REPO / "vscode-extension/package.json").read_text())["version"]
    vsix = REPO / "vscode-extension" / f"devd-{version}.vsix"
    if not vsix.exists():
        subprocess.run(["make", "-C", str(REPO), "vsix"], check=True)

    work = Path(tempfile.mkdtemp(prefix="devd-editor-bench-"))
    ws = work / "ws"
    ws.mkdir()
    shutil.copy(REPO / "examples" / FLOW, ws / FLOW)
    user = os.environ.get("USER") or "devd"
    env = {**os.environ, "USER": "devd" if user == "root" else user,
           "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local",
           "DEVD_RUNTIME_DIR": str(work / "rt"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    (work / "rt").mkdir(mode=0o700)
    subprocess.run([sys.executable, FLOW, "run"], cwd=ws, env=env, check=True,
                   capture_output=True, timeout=300)

    presses: list[float] = []
    to_page: list[float] = []  # key → the new preview reaches the pane's page
    in_page: list[float] = []  # → the page applied it and the new card finished loading
    cli: list[float] = []
    metaflow: list[float] = []
    try:
        with CodeServer(vsix, ws, {"devd.pythonPath": sys.executable}, env,
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
