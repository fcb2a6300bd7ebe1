"""Spins of a run recorded in S3, devd vs Metaflow's own spin, against one S3 server.

A real S3-compatible server (moto's server mode, as in tests/test_s3.py) runs on loopback
behind a relay that counts the bytes it sends. For each parent size,
bench/flows/big_parent_flow.py runs for real with ``--datastore=s3 ... --read True``
(`start` stores a random float64 array of that size in S3, `train` reads one element),
then the recorded `train` task is spun by its pathspec:

  metaflow      ``python flow.py spin PATHSPEC``: every spin, whole process
  devd first    ``devd spin`` through a fresh daemon with an empty disk cache
  devd warm     ``devd spin`` again (parents warm in the daemon)
  devd restart  the first spin of a restarted daemon (parents from the disk cache)

Each row gives the median wall time, the bytes the server sent for that spin, and the
process's peak memory where it applies. "Peak while warming" loads the big parent once
in a fresh process and reports its peak RSS growth (VmHWM, reset first) over the
artifact's size: Metaflow's ``load_artifacts`` (the blob read whole, decompressed whole,
then unpickled), devd before this change (that, plus a copy onto huge pages) and devd now
(streamed from the stored file, pages collapsed in place), for the S3 run (from the disk
cache) and for a local run of the same flow.

    .venv/bin/python bench/s3_bench.py                  # 200 MB and 1024 MB
    .venv/bin/python bench/s3_bench.py --mb 50 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.s3server import S3Server  # noqa: E402

FLOW_SRC = HERE / "flows" / "big_parent_flow.py"
FLOW = FLOW_SRC.name
FLOW_NAME = "BigParentFlow"
MB = 1 << 20

PEAK_CODE = r'''
import json, os, sys
import numpy  # imported before the measurement: its own pages are not the load's
from devd.common import streamload, warmstore
from devd.common.warmstore import TaskRef, open_task_datastore

flow, run_id, task_id, ds_type, ds_root, mode = sys.argv[1:7]
ref = TaskRef(flow, run_id, "start", task_id, 0, ds_type, ds_root)
ds = open_task_datastore(ref)
ds._ca_store.set_blob_cache(None)  # every mode reads the stored blob itself
if ds_type == "s3":  # the blob on local disk first: this measures loading, not transfer
    streamload.blob_files(ref, ds, [ds._objects["big"]])

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current RSS
    fh.write("5")
base = status("VmRSS")
if mode == "metaflow":
    value = dict(ds.load_artifacts(["big"]))["big"]
elif mode == "devd-before":  # the old loader: each value copied onto huge pages as
    import numpy as np        # Metaflow's generator yields it (its blob still alive)
    value = {name: np.array(v, copy=True, order="K")
             for name, v in ds.load_artifacts(["big"])}["big"]
else:
    value = warmstore._load(ref, ds, ["big"])["big"]
print("PEAK " + json.dumps({"peak": status("VmHWM") - base, "size": int(value.nbytes)}))
'''


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str, int]:
    """Wall seconds, stdout, and the process's own peak RSS in bytes (wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-2000:]}\n"
                         f"{err[-2000:]}")
    return elapsed, out, 0


def run_rss(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    proc.stderr.close()
    return elapsed, usage.ru_maxrss * 1024


def daemon_pid(root: Path, env: dict[str, str]) -> int | None:
    out = subprocess.run([sys.executable, "-m", "devd.cli", "status", "--json"], cwd=root,
                         env=env, capture_output=True, text=True).stdout
    try:
        return int(json.loads(out).get("pid"))
    except (ValueError, TypeError, AttributeError):
        return None


def hwm(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak(root: Path, env: dict[str, str], run_id: str, task: str, ds_type: str,
         ds_root: str, mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PEAK_CODE, FLOW_NAME, run_id, task, ds_type,
                          ds_root, mode], cwd=root, env=env, capture_output=True, text=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith("PEAK ")), None)
    if line is None:
        raise SystemExit(f"peak measurement failed: {out.stderr[-2000:]}")
    data = json.loads(line[5:])
    return data["peak"] / data["size"]


def devd_spins(root: Path, env: dict[str, str], s3: S3Server, mb: int, rounds: int,
               pathspec: str, sample: Callable[..., None]) -> int:
    """devd's first, warm and after-restart spins; returns the daemon's peak growth."""
    cli = [sys.executable, "-m", "devd.cli"]
    subprocess.run([*cli, "daemon", "start"], cwd=root, env=env, check=True,
                   capture_output=True)
    pid = daemon_pid(root, env)
    base = hwm(pid)
    before = s3.relay.bytes_down
    seconds, _, _ = run([*cli, "spin", FLOW, pathspec, "--json"], root, env)
    time.sleep(1.0)
    deadline = time.monotonic() + 600  # the daemon warms the big parent in the background
    last = -1
    while time.monotonic() < deadline:
        now = hwm(pid)
        if now == last and now - base > mb * MB * 0.5:
            break
        last = now
        time.sleep(1.0)
    sample("devd first (daemon)", seconds, s3.relay.bytes_down - before)
    daemon_growth = hwm(pid) - base
    for _ in range(rounds):
        before = s3.relay.bytes_down
        seconds, _, _ = run([*cli, "spin", FLOW, pathspec, "--json"], root, env)
        sample("devd warm (daemon)", seconds, s3.relay.bytes_down - before)
    subprocess.run([*cli, "daemon", "stop"], cwd=root, env=env, capture_output=True)
    subprocess.run([*cli, "daemon", "start"], cwd=root, env=env, check=True,
                   capture_output=True)
    before = s3.relay.bytes_down
    seconds, _, _ = run([*cli, "spin", FLOW, pathspec, "--json"], root, env)
    sample("devd after restart", seconds, s3.relay.bytes_down - before)
    subprocess.run([*cli, "daemon", "stop"], cwd=root, env=env, capture_output=True)
    return daemon_growth


def one_size(s3: S3Server, mb: int, rounds: int, bucket: str,
             spins: bool = True) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix=f"devd-s3bench-{mb}-"))
    shutil.copy(FLOW_SRC, root / FLOW)
    runtime = tempfile.mkdtemp(prefix="devd-s3bench-rt-")
    env = {**os.environ, **s3.env(bucket, prefix=f"mf{mb}"),
           "USER": os.environ.get("USER") or "devd-bench",
           "METAFLOW_DEFAULT_METADATA": "local",
           "METAFLOW_CLIENT_CACHE_PATH": str(root / "client-cache"),
           "DEVD_BLOB_CACHE": str(root / "blob-cache"), "DEVD_RUNTIME_DIR": runtime,
           "DEVD_IDLE_TIMEOUT": "600", "PYTHONPATH": str(REPO)}
    if env["USER"] == "root":
        env["USER"] = "devd-bench"
    print(f"[{mb} MB] running the flow into S3 ...", flush=True)
    started = time.perf_counter()
    run([sys.executable, FLOW, "--datastore=s3", "run", "--mb", str(mb), "--read", "True",
         "--run-id-file", "run-id"], root, env)
    run_s = time.perf_counter() - started
    run_id = (root / "run-id").read_text().strip()
    step_dir = root / ".metaflow" / FLOW_NAME / run_id
    train = sorted(p.name for p in (step_dir / "train").iterdir() if not p.name.startswith("_"))
    start = sorted(p.name for p in (step_dir / "start").iterdir() if not p.name.startswith("_"))
    pathspec = f"{FLOW_NAME}/{run_id}/train/{train[0]}"
    rows: dict[str, dict[str, list[float]]] = {}

    def sample(name: str, seconds: float, sent: int, rss: int = 0) -> None:
        row = rows.setdefault(name, {"s": [], "bytes": [], "rss": []})
        row["s"].append(seconds)
        row["bytes"].append(sent)
        row["rss"].append(rss)
        print(f"[{mb} MB] {name}: {seconds:.2f} s, {sent / MB:.1f} MB from S3"
              + (f", peak RSS {rss / MB:.0f} MB" if rss else ""), flush=True)

    daemon_growth = 0
    for _ in range(rounds if spins else 0):  # Metaflow's spin: a new process each time
        before = s3.relay.bytes_down
        seconds, rss = run_rss([sys.executable, FLOW, "spin", pathspec], root, env)
        sample("metaflow spin", seconds, s3.relay.bytes_down - before, rss)

    if spins:
        daemon_growth = devd_spins(root, env, s3, mb, rounds, pathspec, sample)
    ds_root = f"s3://{bucket}/mf{mb}"
    peaks = {f"s3 {mode}": peak(root, env, run_id, start[0], "s3", ds_root, mode)
             for mode in ("metaflow", "devd-before", "devd")}
    local_env = {**env, "METAFLOW_DEFAULT_DATASTORE": "local"}
    run([sys.executable, FLOW, "run", "--mb", str(mb), "--read", "True",
         "--run-id-file", "run-id-local"], root, local_env)
    local_run = (root / "run-id-local").read_text().strip()
    local_start = sorted(p.name for p in (root / ".metaflow" / FLOW_NAME / local_run / "start")
                         .iterdir() if not p.name.startswith("_"))
    for mode in ("metaflow", "devd-before", "devd"):
        peaks[f"local {mode}"] = peak(root, local_env, local_run, local_start[0], "local",
                                      str(root / ".metaflow"), mode)
    for name, ratio in peaks.items():
        print(f"[{mb} MB] peak while warming, {name}: {ratio:.2f}x the artifact", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return {"mb": mb, "run_s": run_s, "rows": rows, "peaks": peaks,
            "daemon_growth_x": daemon_growth / (mb * MB)}


def table(results: list[dict[str, object]]) -> str:
    lines = ["| parent | spin | wall, each (median) | MB from S3, each spin | peak RSS |",
             "|---|---|---|---|---|"]
    for result in results:
        for name, row in result["rows"].items():  # type: ignore[union-attr]
            walls = ", ".join(f"{x:.2f}" for x in row["s"])
            sent = ", ".join(f"{x / MB:.1f}" for x in row["bytes"])
            rss = max(row["rss"])
            lines.append(f"| {result['mb']} MB | {name} | {walls} s "
                         f"({statistics.median(row['s']):.2f}) | {sent} | "
                         f"{f'{rss / MB:.0f} MB' if rss else '-'} |")
    lines += ["", "| parent | store | peak while warming, x artifact: Metaflow load_artifacts "
              "| devd before | devd now |", "|---|---|---|---|---|"]
    for result in results:
        peaks = result["peaks"]
        for store in ("s3", "local"):
            lines.append(f"| {result['mb']} MB | {store} | {peaks[f'{store} metaflow']:.2f} | "
                         f"{peaks[f'{store} devd-before']:.2f} | {peaks[f'{store} devd']:.2f} |")
    lines.append("")
    for result in results:
        if result["rows"]:
            lines.append(f"{result['mb']} MB: the daemon's own peak grew by "
                         f"{result['daemon_growth_x']:.2f}x the artifact over its first spin "
                         f"and the background warm load of the array (its imports and "
                         f"the spin's own work included); the flow's run into S3 took "
                         f"{result['run_s']:.0f} s.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, nargs="*", default=[200, 1024])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peaks-only", action="store_true",
                        help="only the peak memory while warming (no spin timings)")
    args = parser.parse_args()
    s3 = S3Server()
    try:
        s3.create_bucket("devd-bench")
        results = [one_size(s3, mb, args.rounds, "devd-bench", not args.peaks_only)
                   for mb in args.mb]
    finally:
        s3.close()
    print()
    print(table(results))


if __name__ == "__main__":
    main()
