"""Debug spin latency: `devd/spin {debug: true}` to stopped at a breakpoint in the step.

A warm daemon (the step was spun once before), a real DAP client (tests/dapclient.py, what
VS Code, PyCharm or nvim-dap send) that attaches as soon as `devd/debugReady` arrives and
sets one breakpoint in the step. Each round times, from the moment the request is sent:

  ready     `devd/debugReady` received (the step's child listens)
  attached  the client's `attach` answered (initialize, attach, setBreakpoints,
            configurationDone done: the step starts running)
  stopped   the `stopped` event at the breakpoint (what the user waits for)

then continues and waits for the spin's answer (`end`). Two kinds of rounds, alternating:

  first     a new daemon, the step spun once (warm), then its first debug spin: the
            prepared child has the flow imported, and imports debugpy when asked
  again     the next debug spin: the child prepared after a debug spin imported debugpy
            while it waited (the debug-fix-debug loop)

Each round starts a second after the previous spin ended (a person's pace; the daemon
prepares the next child meanwhile). Medians are printed with the machine's load average,
since other jobs make every figure noisy.

    .venv/bin/python bench/debug_bench.py            # 7 rounds of each
    .venv/bin/python bench/debug_bench.py --reps 15
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devd.cli.client import DaemonClient  # noqa: E402
from devd.common.project import daemon_paths  # noqa: E402
from tests.dapclient import DapClient  # noqa: E402

FLOW = '''\
from metaflow import FlowSpec, step


class DebugBenchFlow(FlowSpec):
    @step
    def start(self):
        self.x = list(range(10))
        self.next(self.work)

    @step
    def work(self):
        total = sum(self.x)
        self.total = total  # BREAK
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DebugBenchFlow()
'''
BREAK_LINE = FLOW.splitlines().index("        self.total = total  # BREAK") + 1
MILESTONES = ("ready", "attached", "stopped", "end")


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=root,
                          capture_output=True, text=True, timeout=300)


def one_round(root: Path, flow: Path) -> dict[str, float]:
    """One debug spin, attached at once; seconds from the request to each milestone."""
    ready: queue.Queue[dict[str, Any]] = queue.Queue()
    answer: queue.Queue[Any] = queue.Queue()
    client = DaemonClient(daemon_paths(str(root)))
    params = {"uri": flow.as_uri(), "step": "work", "debug": True}
    marks: dict[str, float] = {}

    def notified(method: str, payload: Any) -> None:
        if method == "devd/debugReady":
            marks["ready"] = time.perf_counter()
            ready.put(payload)

    def work() -> None:
        try:
            answer.put(client.request("devd/spin", params, notified))
        except Exception as exc:  # reported below
            answer.put(exc)
        finally:
            client.close()

    t0 = time.perf_counter()
    threading.Thread(target=work, daemon=True).start()
    endpoint = ready.get(timeout=120)
    dap = DapClient(endpoint["host"], endpoint["port"])
    try:
        dap.attach({str(flow): [BREAK_LINE]})
        marks["attached"] = time.perf_counter()
        stopped = dap.wait_event("stopped", timeout=120)
        marks["stopped"] = time.perf_counter()
        dap.request("continue", {"threadId": stopped["body"]["threadId"]})
        result = answer.get(timeout=120)
        marks["end"] = time.perf_counter()
    finally:
        dap.close()
    if isinstance(result, Exception) or not result.get("ok"):
        raise SystemExit(f"the debug spin failed: {result}")
    if os.environ.get("DEBUG_BENCH_PHASES"):  # the daemon's own split of each round
        print(result["timingsMs"], file=sys.stderr)
    return {name: at - t0 for name, at in marks.items()}


def fresh_daemon(root: Path, flow: Path) -> None:
    """A new daemon with the step spun once (warm parents, no debug spin yet)."""
    cli(root, "daemon", "stop", str(root))
    started = cli(root, "daemon", "start", str(root))
    if started.returncode != 0:
        raise SystemExit(f"the daemon did not start: {started.stderr}")
    with DaemonClient(daemon_paths(str(root))) as client:
        warm = client.request("devd/spin", {"uri": flow.as_uri(), "step": "work"})
        if not warm.get("ok"):
            raise SystemExit(f"the warm-up spin failed: {warm}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="rounds of each kind (default 7)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="devd-debug-bench-"))
    if os.environ.get("USER", "root") in ("", "root"):
        os.environ["USER"] = "devd-bench"
    os.environ["METAFLOW_DEFAULT_DATASTORE"] = "local"
    os.environ["METAFLOW_DEFAULT_METADATA"] = "local"
    os.environ["DEVD_RUNTIME_DIR"] = str(root / "rt")
    flow = root / "debug_bench_flow.py"
    flow.write_text(FLOW)
    try:
        run = subprocess.run([sys.executable, flow.name, "run"], cwd=root,
                             capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            raise SystemExit(f"the flow's run failed:\n{run.stderr}")
        rounds: dict[str, list[dict[str, float]]] = {"first": [], "again": []}
        for _ in range(args.reps):
            fresh_daemon(root, flow)
            time.sleep(1.0)  # a person's pace: the daemon prepares the next child meanwhile
            rounds["first"].append(one_round(root, flow))  # the flow's first debug spin
            time.sleep(1.0)
            rounds["again"].append(one_round(root, flow))  # after a debug spin
        load = os.getloadavg()
        print(f"debug spin, warm daemon, {args.reps} rounds of each "
              f"(load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
              f"{os.cpu_count()} cores); ms from the request, median (min-max):")
        print(f"  {'':6s}" + "".join(f"{name:>20s}" for name in MILESTONES))
        for kind, samples in rounds.items():
            cells = []
            for name in MILESTONES:
                ms = [r[name] * 1000 for r in samples]
                cells.append(f"{statistics.median(ms):.0f} ({min(ms):.0f}-{max(ms):.0f})")
            print(f"  {kind:6s}" + "".join(f"{cell:>20s}" for cell in cells))
        for kind, samples in rounds.items():
            median = statistics.median(r["stopped"] for r in samples) * 1000
            print(f"request -> stopped at the breakpoint ({kind}): median {median:.0f} ms")
    finally:
        cli(root, "daemon", "stop", str(root))
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
