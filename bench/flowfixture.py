"""A 50-step flow with 1,000 recorded runs, made fast, for the flow view's benchmarks.

The flow (a branch, a foreach of 3, 42 linear steps: 50 steps, 52 tasks) runs once for real;
the other 999 runs are that run's local metadata and datastore records hard-linked under
new run ids (``cp -al``), each with its own ``_self.json`` (run id, an older start time), so
Metaflow's Client lists 1,000 complete runs, the real one newest. Hard links: seconds and
no copied bytes, where 999 real runs would take hours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

FLOW_FILE = "wide_flow.py"
FLOW_NAME = "WideFlow"
LINEAR = 42  # + start, left, right, meet, fan, body, gather, end = 50 steps


def source() -> str:
    chain = [f"s{i:02d}" for i in range(LINEAR)]
    steps = [
        "    @step\n    def start(self):\n        self.items = [1, 2, 3]\n"
        "        self.next(self.left, self.right)\n",
        "    @step\n    def left(self):\n        self.side = 'left'\n"
        "        self.next(self.meet)\n",
        "    @step\n    def right(self):\n        self.side = 'right'\n"
        "        self.next(self.meet)\n",
        "    @step\n    def meet(self, inputs):\n        self.items = inputs[0].items\n"
        "        self.next(self.fan)\n",
        "    @step\n    def fan(self):\n        self.next(self.body, foreach='items')\n",
        "    @step\n    def body(self):\n        self.sq = self.input ** 2\n"
        "        self.next(self.gather)\n",
        "    @step\n    def gather(self, inputs):\n"
        "        self.total = sum(i.sq for i in inputs)\n"
        f"        self.next(self.{chain[0]})\n",
    ]
    for name, after in zip(chain, [*chain[1:], "end"], strict=True):
        steps.append(f"    @step\n    def {name}(self):\n        self.total += 1\n"
                     f"        self.next(self.{after})\n")
    steps.append("    @step\n    def end(self):\n        pass\n")
    return ("from metaflow import FlowSpec, step\n\n\n"
            f"class {FLOW_NAME}(FlowSpec):\n" + "\n".join(steps) +
            f"\n\nif __name__ == '__main__':\n    {FLOW_NAME}()\n")


def write_flow(root: Path) -> Path:
    path = root / FLOW_FILE
    path.write_text(source())
    return path


def run_once(root: Path, env: dict[str, str]) -> str:
    """One real run (for the live benchmark, the editor's Ctrl+Alt+R does it instead)."""
    id_file = root / ".run-id"
    subprocess.run([sys.executable, FLOW_FILE, "run", "--run-id-file", str(id_file)], cwd=root,
                   env=env, check=True, capture_output=True, timeout=1800)
    return id_file.read_text().strip()


def _rewrite_self(path: Path, run_id: str, ts_epoch: int) -> None:
    """A copy's own ``_self.json`` (the hard link replaced, not written through)."""
    data = json.loads(path.read_text())
    data["run_number"] = run_id
    data["ts_epoch"] = ts_epoch
    path.unlink()
    path.write_text(json.dumps(data))


def copy_runs(root: Path, run_id: str, total: int = 1000) -> float:
    """Make ``total - 1`` more runs of ``run_id`` (older, as if run one a minute before it);
    returns the seconds it took."""
    began = time.perf_counter()
    flow_dir = root / ".metaflow" / FLOW_NAME
    source_dir = flow_dir / run_id
    first = json.loads((source_dir / "_meta" / "_self.json").read_text())["ts_epoch"]
    for k in range(1, total):
        copy_id = str(int(run_id) - k) if run_id.isdigit() else f"{run_id}-{k}"
        target = flow_dir / copy_id
        subprocess.run(["cp", "-al", str(source_dir), str(target)], check=True)
        stamp = first - 60_000 * k
        _rewrite_self(target / "_meta" / "_self.json", copy_id, stamp)
        for step_self in target.glob("*/_meta/_self.json"):
            _rewrite_self(step_self, copy_id, stamp)
    return time.perf_counter() - began


def runs_count(root: Path) -> int:
    flow_dir = root / ".metaflow" / FLOW_NAME
    return sum(1 for p in flow_dir.iterdir() if (p / "_meta" / "_self.json").exists()
               and p.name != "_meta")


if __name__ == "__main__":  # python bench/flowfixture.py DIR: make the fixture there
    where = Path(sys.argv[1])
    where.mkdir(parents=True, exist_ok=True)
    write_flow(where)
    env = {**os.environ, "METAFLOW_DEFAULT_DATASTORE": "local",
           "METAFLOW_DEFAULT_METADATA": "local"}
    started = time.perf_counter()
    rid = run_once(where, env)
    print(f"run {rid} in {time.perf_counter() - started:.1f} s")
    print(f"999 copies in {copy_runs(where, rid):.1f} s; {runs_count(where)} runs")
