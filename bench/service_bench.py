"""Spins of runs recorded in Metaflow's metadata service (+ S3) vs local metadata (+ local
store): wall time and the requests each spin makes.

Metaflow's real metadata service (tests/mdservice.py: PostgreSQL + Netflix/metaflow-service,
built by ``make mdservice``) and moto's S3 server run on loopback behind relays that count
requests. bench/flows/big_parent_flow.py runs once per configuration (``--mb`` MB parent,
``train`` reads it); then ``train`` is spun by step name (so each spin asks whether there is
a newer run):

  first         the first spin of a fresh daemon (plan resolved, parents loaded)
  warm          ``devd spin`` again through the warm daemon (median of ``--rounds``)
  warm ttl=0    the same with DEVD_SERVICE_RUNS_TTL=0 (asks the service on every spin)
  api warm      ``devd.Session.spin`` in one process, parents warm (median)
  restart       the first spin of a restarted daemon (plan resolved again, disk caches)
  metaflow      ``python flow.py spin PATHSPEC`` (Metaflow's own spin), whole process

Each row: median ms, service requests and S3 GETs per spin (0 for local metadata).

    .venv/bin/python bench/service_bench.py              # 20 MB, 7 rounds
    .venv/bin/python bench/service_bench.py --mb 200 --rounds 5
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.mdservice import CountingRelay, MetadataService, unavailable  # noqa: E402
from tests.s3server import S3Server  # noqa: E402

FLOW = "big_parent_flow.py"
CLI = [sys.executable, "-m", "devd.cli"]
API_CODE = r'''
import json, sys, time
from devd import Session
times = []
with Session("big_parent_flow.py") as session:
    session.spin("train")
    session.wait_warm(60)
    print("READY", flush=True)
    sys.stdin.readline()  # the benchmark reads its counters first
    for _ in range(int(sys.argv[1])):
        t = time.perf_counter()
        result = session.spin("train")
        times.append(time.perf_counter() - t)
        assert result.ok, result.error
print("API " + json.dumps(times))
'''


class Counters:
    def __init__(self, service: CountingRelay | None, s3: CountingRelay | None) -> None:
        self.service, self.s3 = service, s3

    def now(self) -> tuple[int, int]:
        return (self.service.count() if self.service else 0, self.s3.count() if self.s3 else 0)

    def since(self, start: tuple[int, int]) -> tuple[int, int]:
        svc = len(self.service.since(start[0])) if self.service else 0
        gets = len([m for m, _ in self.s3.since(start[1]) if m == "GET"]) if self.s3 else 0
        return svc, gets


def timed(cmd: list[str], root: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout


def measure(name: str, root: Path, env: dict[str, str], counters: Counters, rounds: int,
            pathspec: str) -> list[tuple[str, str, float, float, float]]:
    rows = []
    spin = [*CLI, "spin", FLOW, "train", "--json"]

    def row(what: str, times: list[float], counts: list[tuple[int, int]]) -> None:
        rows.append((name, what, statistics.median(times) * 1000,
                     sum(c[0] for c in counts) / len(counts),
                     sum(c[1] for c in counts) / len(counts)))

    for ttl in ("1", "0"):
        daemon_env = {**env, "DEVD_SERVICE_RUNS_TTL": ttl}
        subprocess.run([*CLI, "daemon", "stop"], cwd=root, env=daemon_env, capture_output=True)
        timed([*CLI, "daemon", "start"], root, daemon_env)
        before = counters.now()
        first, _ = timed(spin, root, daemon_env)
        if ttl == "1":
            row("first", [first], [counters.since(before)])
        times, counts = [], []
        for _ in range(rounds):
            before = counters.now()
            elapsed, _ = timed(spin, root, daemon_env)
            times.append(elapsed)
            counts.append(counters.since(before))
        row("warm" if ttl == "1" else "warm ttl=0", times, counts)
        if ttl == "1":
            subprocess.run([*CLI, "daemon", "stop"], cwd=root, env=daemon_env,
                           capture_output=True)
            timed([*CLI, "daemon", "start"], root, daemon_env)
            before = counters.now()
            restart, _ = timed(spin, root, daemon_env)
            row("restart", [restart], [counters.since(before)])
        subprocess.run([*CLI, "daemon", "stop"], cwd=root, env=daemon_env, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-c", API_CODE, str(rounds)], cwd=root, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    while proc.stdout.readline().strip() != "READY":
        if proc.poll() is not None:
            raise SystemExit("the API benchmark failed before its warm spins")
    before = counters.now()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit("the API benchmark failed")
    api_counts = counters.since(before)
    api = json.loads(next(x for x in out.splitlines() if x.startswith("API "))[4:])
    rows.append((name, "api warm", statistics.median(api) * 1000,
                 api_counts[0] / rounds, api_counts[1] / rounds))
    times, counts = [], []
    for _ in range(max(1, rounds // 2)):
        before = counters.now()
        elapsed, _ = timed([sys.executable, FLOW, "spin", pathspec], root, env)
        times.append(elapsed)
        counts.append(counters.since(before))
    row("metaflow", times, counts)
    return rows


def project(env: dict[str, str], mb: int, extra: list[str]) -> tuple[Path, str]:
    root = Path(tempfile.mkdtemp(prefix="devd-svcbench-"))
    shutil.copy(HERE / "flows" / FLOW, root / FLOW)
    timed([sys.executable, FLOW, *extra, "run", "--mb", str(mb), "--read", "True",
           "--run-id-file", "run-id"], root, env)
    run_id = (root / "run-id").read_text().strip()
    return root, f"BigParentFlow/{run_id}/train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        raise SystemExit(reason)
    if os.environ.get("USER") in (None, "", "root"):  # Metaflow refuses root
        os.environ["USER"] = "devd"
    base = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    base.update(PYTHONPATH=str(REPO), DEVD_IDLE_TIMEOUT="300")
    service = MetadataService()
    s3 = S3Server()
    s3.create_bucket("devd-bench")
    s3_relay = CountingRelay(s3.port)
    rows = []
    roots = []
    try:
        scratch = Path(tempfile.mkdtemp(prefix="devd-svcbench-home-"))
        roots.append(scratch)
        local_env = {**base, "METAFLOW_DEFAULT_METADATA": "local",
                     "METAFLOW_DEFAULT_DATASTORE": "local",
                     "DEVD_RUNTIME_DIR": str(scratch / "rt-local"),
                     "XDG_CACHE_HOME": str(scratch / "xdg-local")}
        root, pathspec = project(local_env, args.mb, [])
        roots.append(root)
        rows += measure("local", root, local_env, Counters(None, None), args.rounds, pathspec)
        svc_env = {**base, **s3.env("devd-bench"), **service.env(),
                   "METAFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_relay.port}",
                   "METAFLOW_HOME": str(scratch), "DEVD_RUNTIME_DIR": str(scratch / "rt-svc"),
                   "XDG_CACHE_HOME": str(scratch / "xdg-svc"),
                   "METAFLOW_CLIENT_CACHE_PATH": str(scratch / "client-cache")}
        root, pathspec = project(svc_env, args.mb, [])
        roots.append(root)
        rows += measure("service+s3", root, svc_env, Counters(service.relay, s3_relay),
                        args.rounds, pathspec)
    finally:
        s3_relay.stop()
        s3.close()
        service.close()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{args.mb} MB parent, `train` spun by step name, {args.rounds} rounds")
    print(f"{'metadata':<11} {'spin':<11} {'median ms':>10} {'service req':>12} {'S3 GETs':>8}")
    for name, what, ms, svc, gets in rows:
        print(f"{name:<11} {what:<11} {ms:10.1f} {svc:12.1f} {gets:8.1f}")


if __name__ == "__main__":
    main()
