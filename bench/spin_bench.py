"""Spin speed, side by side with Metaflow's own `python flow.py spin`, measured in one run.

For each parent size the same trivial step is spun, alternating between:
  metaflow   `python flow.py spin RUN/train` (a whole process, as a user types it)
  cli-cold   `devd spin --no-daemon flow.py RUN/train` (a whole process, no daemon)
  cli-warm   `devd spin flow.py RUN/train` against a running daemon (a whole process)
  warm       `devd.Session.spin("RUN/train")` in this process, parents already warm
and the first (cold) Session spin is reported on its own. Medians and ratios vs metaflow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLOW = "big_parent_flow.py"


def env() -> dict[str, str]:
    e = dict(os.environ)
    if not e.get("USER") or e.get("USER") == "root":
        e["USER"] = "devd-bench"
    e["METAFLOW_DEFAULT_DATASTORE"] = "local"
    e["METAFLOW_DEFAULT_METADATA"] = "local"
    return e


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bench_size(mb: int, reps: int, keep: bool) -> dict[str, object]:
    project = Path(tempfile.mkdtemp(prefix=f"devd-bench-{mb}-"))
    runtime = tempfile.mkdtemp(prefix="dvb")
    os.environ.update({k: v for k, v in env().items() if k in (
        "USER", "METAFLOW_DEFAULT_DATASTORE", "METAFLOW_DEFAULT_METADATA")})
    os.environ["DEVD_RUNTIME_DIR"] = runtime
    shutil.copy(HERE / "flows" / FLOW, project / FLOW)
    py = sys.executable
    devd = [py, "-m", "devd.cli"]
    try:
        id_file = project / "run-id"
        print(f"[{mb} MB] running the flow once for real ...", flush=True)
        timed([py, FLOW, "run", "--mb", str(mb), "--run-id-file", str(id_file)], project)
        run_id = id_file.read_text().strip()
        target = f"{run_id}/train"
        timed([*devd, "daemon", "start", str(project)], project)
        daemon_first = timed([*devd, "spin", FLOW, target, "--json"], project)

        os.chdir(project)
        import devd as api

        session = api.Session(FLOW)
        started = time.perf_counter()
        first = session.spin(target)
        first_cold = time.perf_counter() - started
        assert first.ok, first.error

        samples: dict[str, list[float]] = {k: [] for k in
                                           ("metaflow", "cli-cold", "cli-warm", "warm")}
        for i in range(reps):
            print(f"[{mb} MB] round {i + 1}/{reps}", flush=True)
            samples["metaflow"].append(timed([py, FLOW, "spin", target], project))
            samples["cli-cold"].append(
                timed([*devd, "spin", "--no-daemon", FLOW, target, "--json"], project))
            samples["cli-warm"].append(timed([*devd, "spin", FLOW, target, "--json"],
                                             project))
            t = time.perf_counter()
            result = session.spin(target)
            samples["warm"].append(time.perf_counter() - t)
            assert result.ok
        memory = rss_mb()
        session.close()
        timed([*devd, "daemon", "stop", str(project)], project)
        medians = {k: statistics.median(v) for k, v in samples.items()}
        return {"mb": mb, "medians": medians, "first_cold": first_cold,
                "daemon_first": daemon_first, "rss_mb": memory, "reps": reps}
    finally:
        os.chdir(HERE)
        shutil.rmtree(runtime, ignore_errors=True)
        if not keep:
            shutil.rmtree(project, ignore_errors=True)


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| parent | metaflow spin | devd CLI, no daemon | devd CLI, warm daemon | "
        "devd warm Session | first Session spin (cold) | RSS after |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        m: dict[str, float] = row["medians"]  # type: ignore[assignment]
        base = m["metaflow"]
        first: float = row["first_cold"]  # type: ignore[assignment]

        def cell(value: float, base: float = base, digits: int = 0) -> str:
            return f"{value * 1000:.{digits}f} ms ({base / value:.1f}x)"

        lines.append(
            f"| {row['mb']} MB | {base * 1000:.0f} ms | {cell(m['cli-cold'])} | "
            f"{cell(m['cli-warm'])} | {cell(m['warm'], digits=1)} | {cell(first)} | "
            f"{row['rss_mb']:.0f} MB |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200,1024", help="parent sizes in MB")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke mode: 20 MB, 3 rounds")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table here")
    parser.add_argument("--keep", action="store_true", help="keep the temp projects")
    args = parser.parse_args()
    sizes = [20] if args.quick else [int(s) for s in args.sizes.split(",")]
    reps = 3 if args.quick else args.reps
    rows = [bench_size(mb, reps, args.keep) for mb in sizes]
    text = table(rows)
    print("\nmedians of alternating runs; ratios are metaflow's time / devd's time\n")
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
