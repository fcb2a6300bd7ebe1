"""Daemon memory under repeated spins: N `devd spin` commands against one warm daemon.

examples/hello_flow.py is copied into a temporary project and run for real once; a daemon
is started for it (`devd daemon start`) and `devd spin hello_flow.py train` is run N times
(default 10,000), each a whole CLI process with a connection of its own, as typed in a
terminal. The daemon's resident size (VmRSS), its anonymous mappings (count and resident
KB, from /proc/PID/smaps) and its malloc arenas (`devd status`) are sampled after a warm-up
and along the way; the growth per spin is computed from a least-squares line through the
samples after the warm-up, so one sample's noise does not decide it.

--compare starts a second project and daemon with DEVD_MALLOC_TUNING=0 (glibc's default
arenas, no trimming: the allocator as before devd/core/memory.py) and alternates spins between
the two daemons, so both see the same machine load. (The other cause found, a fork moving
the daemon's young garbage into the oldest generation, devd/common/forking.py, has no switch: it
was a defect, not a setting.) --persistent spins over one kept connection (the editor's
pattern) instead of a CLI process per spin. --compare-rev REV adds a daemon running devd
as it was at git revision REV (`git archive` of this repository into the temporary
directory, first on PYTHONPATH for its CLI and daemon), e.g. the commit before a fix.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FLOW_SRC = REPO / "examples" / "hello_flow.py"
FLOW = FLOW_SRC.name
STEP = "train"


def devd_bin() -> list[str]:
    exe = Path(sys.executable).with_name("devd")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "devd.cli"]


@dataclass
class Sample:
    spins: int
    rss_kb: int
    anon_maps: int
    anon_kb: int
    threads: int
    fds: int
    arenas: int | None


@dataclass
class Target:
    """One project and its daemon, measured."""

    label: str
    root: Path
    env: dict[str, str]
    pid: int = 0
    samples: list[Sample] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    failures: int = 0
    client: Any = None

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*devd_bin(), *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=600)
        if check and proc.returncode != 0:
            raise SystemExit(f"devd {' '.join(args)} failed ({proc.returncode}): "
                             f"{proc.stderr.strip()[-500:]}")
        return proc

    def start(self) -> None:
        subprocess.run([sys.executable, FLOW, "run"], cwd=self.root, env=self.env, check=True,
                       capture_output=True, timeout=600)
        self.run("daemon", "start")
        self.pid = int(self.status()["pid"])

    def status(self) -> dict[str, Any]:
        return json.loads(self.run("status", "--json").stdout)

    def spin(self, persistent: bool) -> None:
        t0 = time.perf_counter()
        if persistent:
            if self.client is None:
                from devd.cli.client import DaemonClient, file_uri
                from devd.common.project import daemon_paths

                os.environ.update(self.env)
                self.client = (DaemonClient(daemon_paths(str(self.root)), timeout=600),
                               {"uri": file_uri(str(self.root / FLOW)), "step": STEP})
            client, params = self.client
            ok = bool(client.request("devd/spin", params).get("ok"))
        else:
            ok = self.run("spin", FLOW, STEP, "--json", check=False).returncode == 0
        self.seconds.append(time.perf_counter() - t0)
        self.failures += not ok

    def sample(self, spins: int) -> Sample:
        sample = Sample(spins, *proc_memory(self.pid), arenas=None)
        sample.arenas = (self.status().get("memory") or {}).get("mallocArenas")
        self.samples.append(sample)
        return sample

    def stop(self) -> None:
        if self.client is not None:
            self.client[0].close()
        self.run("daemon", "stop", check=False)


def proc_memory(pid: int) -> tuple[int, int, int, int, int]:
    """VmRSS KB, anonymous mappings and their resident KB, threads, open fds."""
    rss = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    maps = anon_kb = 0
    anon = False
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            parts = line.split()
            if not parts[0].endswith(":") and "-" in parts[0]:  # a mapping's header line
                anon = len(parts) < 6  # no path: anonymous ([heap], [stack] have one)
                maps += anon
            elif anon and parts[0] == "Rss:":
                anon_kb += int(parts[1])
    threads = len(os.listdir(f"/proc/{pid}/task"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, maps, anon_kb, threads, fds


def slope_kb_per_spin(samples: list[Sample]) -> float:
    """Least-squares growth of RSS per spin (KB) over the samples."""
    if len(samples) < 2:
        return 0.0
    xs = [s.spins for s in samples]
    ys = [s.rss_kb for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def checkout(rev: str, into: Path) -> Path:
    """This repository's files at ``rev`` (its devd package importable from there)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True,
                             timeout=120)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {rev} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True,
                   timeout=120)
    return into


def make_target(base: Path, runtime: Path, label: str, extra: dict[str, str]) -> Target:
    slug = "".join(c if c.isalnum() else "-" for c in label)
    root = base / slug
    root.mkdir()
    shutil.copy(FLOW_SRC, root / FLOW)
    env = {**os.environ, **extra}
    if env.get("USER", "root") in ("", "root"):
        env["USER"] = "devd-bench"
    env.update(METAFLOW_DEFAULT_DATASTORE="local", METAFLOW_DEFAULT_METADATA="local",
               METAFLOW_CLIENT_CACHE_PATH=str(base / f"client-cache-{slug}"),
               DEVD_RUNTIME_DIR=str(runtime), DEVD_IDLE_TIMEOUT="3600")
    env.pop("METAFLOW_DATASTORE_SYSROOT_LOCAL", None)
    return Target(label, root, env)


def report(targets: list[Target], args: argparse.Namespace, started: str, done: int) -> str:
    how = "one kept connection" if args.persistent else "a `devd spin` process each"
    count = f"{done} spins" if done == args.spins else \
        f"{done} spins (interrupted; {args.spins} asked)"
    lines = [f"Soak: {count} of `{STEP}` ({FLOW}, {how}), after {args.warmup} "
             f"warm-up spins; started {started}, {platform.platform()}, "
             f"{os.cpu_count()} cores",
             "",
             "| daemon | spins | RSS after warm-up | RSS at end | growth | per spin (fit) "
             "| anon mappings | anon RSS | malloc arenas | threads | fds | spin median | failed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in targets:
        first, last = t.samples[0], t.samples[-1]
        median = statistics.median(t.seconds[args.warmup:] or [0.0]) * 1000
        lines.append(
            f"| {t.label} | {last.spins - first.spins} | {first.rss_kb / 1024:.1f} MB "
            f"| {last.rss_kb / 1024:.1f} MB | {(last.rss_kb - first.rss_kb) / 1024:+.1f} MB "
            f"| {slope_kb_per_spin(t.samples):+.2f} KB "
            f"| {first.anon_maps} → {last.anon_maps} "
            f"| {first.anon_kb / 1024:.1f} → {last.anon_kb / 1024:.1f} MB "
            f"| {first.arenas or '?'} → {last.arenas or '?'} "
            f"| {first.threads} → {last.threads} "
            f"| {first.fds} → {last.fds} | {median:.0f} ms | {t.failures} |")
    lines += ["", "Samples (spins: RSS MB / anon mappings / malloc arenas; ? where the "
              "daemon does not report them):", ""]
    for t in targets:
        row = ", ".join(f"{s.spins}: {s.rss_kb / 1024:.1f}/{s.anon_maps}/{s.arenas or '?'}"
                        for s in t.samples)
        lines.append(f"- {t.label}: {row}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spins", type=int, default=10_000, help="spins measured (10000)")
    parser.add_argument("--warmup", type=int, default=200, help="spins before the first "
                        "sample (200): imports, caches and the first full collections")
    parser.add_argument("--every", type=int, default=0,
                        help="sample every N spins (default: 20 samples)")
    parser.add_argument("--compare", action="store_true",
                        help="also a daemon with DEVD_MALLOC_TUNING=0, spins alternating")
    parser.add_argument("--compare-rev", metavar="REV",
                        help="also a daemon running devd as of this git revision")
    parser.add_argument("--persistent", action="store_true",
                        help="spin over one kept connection, not a CLI process per spin")
    parser.add_argument("--markdown", help="append the report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("soak_bench reads /proc: Linux only", file=sys.stderr)
        return 2
    every = args.every or max(args.spins // 20, 1)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    base = Path(tempfile.mkdtemp(prefix="devd-soak-"))
    # Sockets: a Unix socket's path is limited to ~100 bytes, TMPDIR may be deep.
    runtime = Path(tempfile.mkdtemp(prefix="dsoak", dir="/tmp"))
    targets = [make_target(base, runtime, "tuned", {})]
    if args.compare:
        targets.append(make_target(base, runtime, "untuned", {"DEVD_MALLOC_TUNING": "0"}))
    if args.compare_rev:
        source = checkout(args.compare_rev, base / "rev")
        path = os.pathsep.join(p for p in (str(source), os.environ.get("PYTHONPATH")) if p)
        targets.append(make_target(base, runtime, f"at {args.compare_rev}",
                                   {"PYTHONPATH": path}))
    try:
        for t in targets:
            t.start()
            print(f"{t.label}: daemon pid {t.pid} for {t.root}", flush=True)
        for _ in range(args.warmup):
            for t in targets:
                t.spin(args.persistent)
        for t in targets:
            s = t.sample(0)
            print(f"{t.label} after warm-up: RSS {s.rss_kb / 1024:.1f} MB, {s.anon_maps} "
                  f"anon mappings, {s.arenas} arenas", flush=True)
        t0 = time.monotonic()
        done = 0
        try:  # Ctrl-C (or SIGTERM) ends the soak early: what was measured is reported
            for i in range(1, args.spins + 1):
                for t in targets:
                    t.spin(args.persistent)
                done = i
                if i % every == 0 or i == args.spins:
                    for t in targets:
                        s = t.sample(i)
                        print(f"{i:>6} {t.label:>8}: RSS {s.rss_kb / 1024:7.1f} MB  anon "
                              f"{s.anon_maps:>3} maps {s.anon_kb / 1024:6.1f} MB  arenas "
                              f"{s.arenas or '?'}  ({(time.monotonic() - t0) / i * 1000:.0f} "
                              "ms/round)", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted after {done} spins", flush=True)
            if done and done % every:
                for t in targets:
                    t.sample(done)
        text = report(targets, args, started, done)
        print("\n" + text)
        if args.markdown:
            with open(args.markdown, "a") as fh:
                fh.write(text + "\n")
        return 1 if any(t.failures for t in targets) else 0
    finally:
        for t in targets:
            t.stop()
        shutil.rmtree(runtime, ignore_errors=True)
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
