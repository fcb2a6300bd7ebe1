"""Spinning match cutting's `score` step: devd vs `python flow.py spin`, in one run.

examples/match_cutting/flow.py is run for real once (`--frames 8000`: a ~220 MB uint8
video, the step's big parent, plus the small shot arrays), then its recorded `score` task
is spun by full pathspec in alternating rounds (A B C D A B C D ...), medians reported:

  metaflow spin   `python flow.py spin PATHSPEC`, the whole process
  devd cli cold   `devd spin --no-daemon flow.py PATHSPEC --json`, the whole process
  devd daemon     `devd spin flow.py PATHSPEC --json` through a running daemon
  devd warm       `devd.Session(flow).spin(PATHSPEC)` in this process, parents warm

Unlike bench/spin_bench.py's trivial step, `score` does real work: it scores every pair of
shots and its card reads the video for the best pairs' thumbnails, so every tool has to load
the 220 MB array (Metaflow from its datastore on every spin; devd once, then keeps it warm).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from spin_bench import (
    REPO,
    clear_blob_cache,
    code_version,
    compile_devd,
    devd_command,
    devd_json,
    machine,
    ms,
    run,
    set_environment,
    vs,
)

EXAMPLE = REPO / "examples" / "match_cutting"
FLOW_NAME = "MatchCuttingFlow"
COLUMNS = ("metaflow spin", "devd cli cold", "devd daemon", "devd warm")


def score_pathspec(project: Path, run_id: str) -> str:
    step_dir = project / ".metaflow" / FLOW_NAME / run_id / "score"
    tasks = sorted(p.name for p in step_dir.iterdir() if not p.name.startswith("_"))
    return f"{FLOW_NAME}/{run_id}/score/{tasks[0]}"


def bench(frames: int, reps: int, root: Path) -> dict:
    """Run the flow once, then time the four columns in alternating rounds."""
    import devd

    project = root / "match"
    project.mkdir()
    for name in (".metaflow", ".metaflow_spin"):
        (project / name).mkdir()
    for source in EXAMPLE.glob("*.py"):
        shutil.copy(source, project / source.name)
    py, cli = sys.executable, devd_command()
    print(f"running the flow once for real ({frames} frames) ...", flush=True)
    run_s, _ = run([py, "flow.py", "run", "--frames", str(frames), "--run-id-file", "run-id"],
                   project, timeout=1800)
    pathspec = score_pathspec(project, (project / "run-id").read_text().strip())
    os.chdir(project)
    session = devd.Session("flow.py")
    first_started = time.perf_counter()
    first = session.spin(pathspec)
    first_s = time.perf_counter() - first_started
    if not first.ok:
        raise SystemExit(f"devd spin failed: {first.error}")
    video_mb = first.artifacts["video"].nbytes / 1e6
    shots = len(first.artifacts["shot_ids"])
    del first
    if hasattr(session, "wait_warm"):
        session.wait_warm()
    run([*cli, "daemon", "start", str(project)], project)
    samples: dict[str, list[float]] = {c: [] for c in COLUMNS}
    try:
        devd_json(run([*cli, "spin", "flow.py", pathspec, "--json"], project)[1])  # warm it
        for i in range(reps):
            print(f"round {i + 1}/{reps}", flush=True)
            samples["metaflow spin"].append(run([py, "flow.py", "spin", pathspec], project)[0])
            elapsed, out = run([*cli, "spin", "--no-daemon", "flow.py", pathspec, "--json"],
                               project)
            devd_json(out)
            samples["devd cli cold"].append(elapsed)
            elapsed, out = run([*cli, "spin", "flow.py", pathspec, "--json"], project)
            devd_json(out)
            samples["devd daemon"].append(elapsed)
            started = time.perf_counter()
            spun = session.spin(pathspec)
            samples["devd warm"].append(time.perf_counter() - started)
            if not spun.ok:
                raise SystemExit(f"devd warm spin failed: {spun.error}")
    finally:
        run([*cli, "daemon", "stop", str(project)], project)
        session.close()
        os.chdir(REPO)
    return {"frames": frames, "video_mb": video_mb, "shots": shots, "run_s": run_s,
            "first_session_s": first_s, "samples": samples, "pathspec": pathspec}


def report(result: dict, reps: int, command: str) -> str:
    """The markdown section for docs/benchmarks.md."""
    import metaflow

    med = {c: statistics.median(s) for c, s in result["samples"].items()}
    mf = med["metaflow spin"]
    lines = [
        f"## Match cutting: spinning `score` on a {result['video_mb']:.0f} MB video",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Machine: {machine()}",
        f"- Python {sys.version.split()[0]}, Metaflow {metaflow.__version__}, devd at "
        f"{code_version()}",
        f"- Command: `{command}`",
        f"- Flow: `examples/match_cutting/flow.py --frames {result['frames']}` "
        f"({result['shots']} shots after deduplication); `score` scores every pair and its "
        "card reads the video for thumbnails. Medians of "
        f"{reps} alternating rounds; (Nx) = Metaflow's time / devd's.",
        "",
        "| step | metaflow spin | devd CLI, cold (no daemon) | devd CLI via warm daemon | "
        "devd warm Session |",
        "|---|---|---|---|---|",
        f"| `score` ({result['video_mb']:.0f} MB parent) | {ms(mf)} | "
        f"{vs(mf, med['devd cli cold'])} | {vs(mf, med['devd daemon'])} | "
        f"{vs(mf, med['devd warm'])} |",
        "",
        f"A new Session's first spin (loads the parents): {ms(result['first_session_s'])}. "
        f"Flow run once for real: {result['run_s']:.1f} s.",
        "",
        "Every sample (ms): " + "; ".join(
            f"{c}: " + " ".join(f"{s * 1000:.0f}" for s in result["samples"][c])
            for c in COLUMNS),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8000, help="video length (8000)")
    parser.add_argument("--reps", type=int, default=5, help="alternating rounds (5)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 480 frames, 1 round")
    parser.add_argument("--markdown", metavar="FILE", help="append the report's section here")
    args = parser.parse_args(argv)
    frames, reps = (480, 1) if args.quick else (args.frames, args.reps)
    command = shlex.join(["python", os.path.relpath(__file__, REPO),
                          *(sys.argv[1:] if argv is None else argv)])
    root = Path(tempfile.mkdtemp(prefix="devd-match-bench-"))
    set_environment(root, eager=False)
    clear_blob_cache()
    compile_devd()
    import numpy  # noqa: F401  (after the environment: Metaflow reads it on import)

    try:
        result = bench(frames, reps, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = report(result, reps, command)
    print("\n" + text)
    print(json.dumps({c: round(statistics.median(s) * 1000, 1)
                      for c, s in result["samples"].items()}))
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write("\n" + text)
        print(f"appended to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
