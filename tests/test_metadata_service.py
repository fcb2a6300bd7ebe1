"""Runs recorded the way teams record them: Metaflow's real metadata service (Netflix/
metaflow-service on PostgreSQL, tests/mdservice.py) and S3 (moto's server), both on
loopback behind relays that count every request.

Everything that talks to them runs in subprocesses (the flow, the daemon, the CLI, a
checker using devd's Python API): Metaflow reads its metadata and datastore configuration
once, when first imported, and this pytest process is configured for local ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import daemon_environment
from tests.mdservice import CountingRelay, MetadataService, unavailable
from tests.s3server import S3Server, free_port

DEVD = [sys.executable, "-m", "devd.cli"]

FLOW = '''\
from metaflow import Config, FlowSpec, IncludeFile, card, current, step
from metaflow.cards import Markdown


class MdFlow(FlowSpec):
    settings = Config("settings", default="settings.json")
    notes = IncludeFile("notes", default="notes.txt")

    @card
    @step
    def start(self):
        self.lr = self.settings["lr"]
        self.note_words = len(self.notes.split())
        current.card.append(Markdown("# lr %s" % self.lr))
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 1
        self.next(self.join_ab)

    @step
    def b(self):
        self.x = 2
        self.next(self.join_ab)

    @step
    def join_ab(self, inputs):
        self.xs = sorted(i.x for i in inputs)
        self.merge_artifacts(inputs, exclude=["x"])
        self.next(self.split)

    @step
    def split(self):
        self.outer = [10, 20]
        self.next(self.fan, foreach="outer")

    @step
    def fan(self):
        self.o = self.input
        self.inner = list(range(13)) if self.o == 10 else [0, 1]  # 13: two-digit indices
        self.next(self.body, foreach="inner")

    @step
    def body(self):
        self.v = self.o + self.input
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.vs = [i.v for i in inputs]
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.all = [i.vs for i in inputs]
        self.next(self.route)

    @step
    def route(self):
        self.way = "fast"
        self.next({"fast": self.fast, "slow": self.slow}, condition="way")

    @step
    def fast(self):
        self.speed = 10
        self.next(self.merge)

    @step
    def slow(self):
        self.speed = 1
        self.next(self.merge)

    @step
    def merge(self):
        self.seen = self.speed * 2
        self.next(self.loop)

    @step
    def loop(self):
        self.count = getattr(self, "count", 0) + 1
        self.done = self.count >= 3
        self.next({True: self.after, False: self.loop}, condition="done")

    @step
    def after(self):
        self.final = (self.count, self.seen)
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(sum(v) for v in self.all) + self.settings["lr"]


if __name__ == "__main__":
    MdFlow()
'''
# start, a, b, join_ab, split, fan x2, body x15 (13 + 2), inner_join x2, outer_join, route,
# fast, merge, loop x3, after, end
TASKS = 33

# Spins every task of the run in-process (devd's Python API) and compares each with what
# Metaflow's Client (through the service) shows for the recorded task; then one --persist
# spin, read back from the local spin store.
CHECKER = '''\
import json, sys
from metaflow import Flow, Task, namespace
import devd
from devd import Session

namespace(None)
run = Flow("MdFlow")[sys.argv[1]]
report = {"spun": [], "bad": [], "compared": 0}
with Session("md_flow.py") as session:
    for step in run:
        for task in step:
            result = session.spin(task.pathspec)
            report["spun"].append(task.pathspec)
            if not result.ok:
                report["bad"].append([task.pathspec, "failed", str(result.error)])
                continue
            for artifact in task:
                if artifact.id.startswith("_") or artifact.id not in result.artifacts:
                    continue
                report["compared"] += 1
                if result.artifacts[artifact.id] != artifact.data:
                    report["bad"].append([task.pathspec, artifact.id])
persisted = devd.spin("md_flow.py", run["end"].task.pathspec, persist=True)
spun = Task(persisted.pathspec, _namespace_check=False, _current_metadata="spin@.")
report["persisted"] = spun.data.total
report["persisted_ds"] = [spun.metadata_dict.get("ds-type"), spun.metadata_dict.get("ds-root")]
print("REPORT " + json.dumps(report))
'''


@dataclass
class Team:
    """A project whose flow ran through the service and S3; the counting relays."""

    root: Path
    env: dict[str, str]
    run_id: str
    service: MetadataService
    s3: CountingRelay

    def devd(self, *args: str, env: dict[str, str] | None = None,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*DEVD, *args], cwd=self.root, env=env or self.env,
                              capture_output=True, text=True, timeout=timeout)

    def counts(self) -> tuple[int, int]:
        return self.service.relay.count(), self.s3.count()

    def asked(self, since: tuple[int, int]) -> tuple[list[tuple[str, str]], list[str]]:
        """Service requests and S3 GETs made since ``since`` (a ``counts()``)."""
        service = self.service.relay.since(since[0])
        gets = [path for method, path in self.s3.since(since[1]) if method == "GET"]
        return service, gets


@pytest.fixture(scope="module")
def team() -> Iterator[Team]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    service = MetadataService()
    s3 = S3Server()
    s3.create_bucket("devd-team")
    s3_relay = CountingRelay(s3.port)
    root = Path(tempfile.mkdtemp(prefix="devd-mds-"))
    try:
        (root / "md_flow.py").write_text(FLOW)
        (root / "settings.json").write_text(json.dumps({"lr": 0.5}))
        (root / "notes.txt").write_text("notes a team keeps beside the flow\n")
        (root / "checker.py").write_text(CHECKER)
        (root / "mfhome").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update(s3.env("devd-team"))
        env.update(service.env())
        env.update(METAFLOW_S3_ENDPOINT_URL=f"http://127.0.0.1:{s3_relay.port}",
                   METAFLOW_HOME=str(root / "mfhome"),
                   METAFLOW_CLIENT_CACHE_PATH=str(root / "client-cache"),
                   XDG_CACHE_HOME=str(root / "xdg-cache"),
                   PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        proc = subprocess.run([*DEVD, "run", "md_flow.py"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run_id = proc.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1]
        with daemon_environment("devd-mds-rt-") as runtime:
            env["DEVD_RUNTIME_DIR"] = runtime
            yield Team(root, env, run_id, service, s3_relay)
            subprocess.run([*DEVD, "daemon", "stop"], cwd=root, env=env, capture_output=True,
                           timeout=60)
            shutil.rmtree(runtime, ignore_errors=True)
    finally:
        s3_relay.stop()
        s3.close()
        service.close()
        shutil.rmtree(root, ignore_errors=True)


def test_the_run_is_recorded_in_the_service_and_s3(team: Team) -> None:
    posted = [path for method, path in team.service.relay.requests if method == "POST"]
    assert f"/flows/MdFlow/runs/{team.run_id}/steps/end/task" in posted, posted
    puts = [path for method, path in team.s3.requests if method == "PUT"]
    assert any("/metaflow/MdFlow/data/" in path for path in puts), puts  # artifacts in S3


def test_every_task_of_a_service_run_spins_right_and_persist_goes_local(team: Team) -> None:
    proc = subprocess.run([sys.executable, "checker.py", team.run_id], cwd=team.root,
                          env=team.env, capture_output=True, text=True, timeout=600)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("REPORT ")), None)
    assert line is not None, proc.stdout + proc.stderr
    report = json.loads(line[len("REPORT "):])
    assert len(report["spun"]) == TASKS, report["spun"]
    assert report["bad"] == []
    assert report["compared"] >= TASKS
    assert report["persisted"] == sum(range(10, 23)) + (20 + 21) + 0.5
    ds_type, ds_root = report["persisted_ds"]  # as Metaflow's spin: the local spin store
    assert ds_type == "spin" and ds_root.startswith(str(team.root / ".metaflow_spin")), ds_root


def _spin(team: Team, *args: str, env: dict[str, str] | None = None) -> dict:
    proc = team.devd("spin", "md_flow.py", *args, "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"], proc.stdout + proc.stderr
    return data


def test_a_warm_spin_asks_the_service_and_s3_nothing(team: Team) -> None:
    env = {**team.env, "DEVD_SERVICE_RUNS_TTL": "3600"}
    team.devd("daemon", "stop", env=env)
    assert team.devd("daemon", "start", env=env).returncode == 0
    for step in ("end", "body", "inner_join"):
        first = _spin(team, step, env=env)
        before = team.counts()
        again = _spin(team, step, env=env)
        service, gets = team.asked(before)
        assert (service, gets) == ([], []), step
        assert again["artifacts"] == first["artifacts"]
    # A restarted daemon resolves the plan again through the Client (a bounded number of
    # service requests, docs/remote.md) and finds every blob, index and included file in its
    # disk caches: S3 sees nothing, not even a check that the store answers (the store is
    # checked only before a real read, devd/common/storeprobe.py).
    team.devd("daemon", "stop", env=env)
    assert team.devd("daemon", "start", env=env).returncode == 0
    for step, parents in (("end", 1), ("inner_join", 13)):
        before = team.counts()
        restarted = _spin(team, step, env=env)
        service, gets = team.asked(before)
        assert restarted["ok"] and gets == [], gets
        # the bound docs/remote.md states: 16, and 5 per parent task (21 and 81 here)
        assert len(service) <= 16 + 5 * parents, (step, len(service), service)
    team.devd("daemon", "stop", env=env)


def test_one_latest_run_request_per_spin_and_a_new_run_elsewhere_is_picked_up(
        team: Team) -> None:
    env = {**team.env, "DEVD_SERVICE_RUNS_TTL": "0"}  # ask on every spin
    team.devd("daemon", "stop", env=env)
    assert team.devd("daemon", "start", env=env).returncode == 0
    first = _spin(team, "outer_join", env=env)
    assert first["originRunId"] == team.run_id
    before = team.counts()
    _spin(team, "outer_join", env=env)
    service, gets = team.asked(before)
    assert gets == []
    assert len(service) == 1, service  # the newest run, one row
    assert service[0][1].startswith("/flows/MdFlow/runs?_limit=1"), service
    team.devd("daemon", "stop", env=env)
    # The default: asked at most once a second. Another process in another directory (no
    # .metaflow/ here changes) records a new run: resumed at `end`, the rest cloned.
    assert team.devd("daemon", "start").returncode == 0
    assert _spin(team, "outer_join")["originRunId"] == team.run_id
    elsewhere = Path(tempfile.mkdtemp(prefix="devd-mds-other-"))
    try:
        for name in ("md_flow.py", "settings.json", "notes.txt"):
            shutil.copy(team.root / name, elsewhere / name)
        proc = subprocess.run([sys.executable, "md_flow.py", "resume", "end", "--origin-run-id",
                               team.run_id, "--run-id-file", "new-run"], cwd=elsewhere,
                              env=team.env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        new_run = (elsewhere / "new-run").read_text().strip()
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)
    assert new_run != team.run_id
    again = _spin(team, "outer_join")  # the next spin
    assert again["originRunId"] == new_run
    assert again["artifacts"] == first["artifacts"]
    team.devd("daemon", "stop")


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_outages_are_one_line_naming_the_service(team: Team) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/"
    cases = {
        "down": ({"METAFLOW_SERVICE_URL": dead_url}, dead_url, "Connection refused"),
        "wrong URL": ({"METAFLOW_SERVICE_URL": team.service.url + "nothing/"},
                      team.service.url + "nothing/", "HTTP 404"),
    }
    for name, (extra, url, why) in cases.items():
        started = time.monotonic()
        line = _one_line(team.devd("spin", "--no-daemon", "md_flow.py", "end",
                                   env={**team.env, **extra}))
        elapsed = time.monotonic() - started
        assert f"Metaflow's metadata service at {url}" in line, (name, line)
        assert why in line, (name, line)
        assert elapsed < 60, (name, elapsed)  # a few seconds, never Metaflow's retry loop
    team.service.relay.api_key = "team-key"  # a gateway that wants the team's key
    try:
        wrong = {"none": {},
                 "METAFLOW_SERVICE_AUTH_KEY": {"METAFLOW_SERVICE_AUTH_KEY": "old-key"},
                 "METAFLOW_SERVICE_HEADERS": {"METAFLOW_SERVICE_HEADERS":
                                              json.dumps({"x-api-key": "old-key"})}}
        for name, extra in wrong.items():
            before = team.service.relay.count()
            line = _one_line(team.devd("spin", "--no-daemon", "md_flow.py", "end",
                                       env={**team.env, **extra}))
            assert f"Metaflow's metadata service at {team.service.url}" in line, (name, line)
            assert "refused devd's credentials (HTTP 403)" in line, (name, line)
            # devd's one question, refused: no retry loop behind the line
            assert len(team.service.relay.since(before)) == 1, name
        keyed = {**team.env, "METAFLOW_SERVICE_AUTH_KEY": "team-key"}
        proc = team.devd("spin", "--no-daemon", "md_flow.py", "end", "--json", env=keyed)
        assert proc.returncode == 0 and json.loads(proc.stdout)["ok"], proc.stderr
        headers = {**team.env, "METAFLOW_SERVICE_HEADERS": json.dumps({"x-api-key": "team-key"})}
        proc = team.devd("spin", "--no-daemon", "md_flow.py", "join_ab", "--json", env=headers)
        assert proc.returncode == 0 and json.loads(proc.stdout)["ok"], proc.stderr
    finally:
        team.service.relay.api_key = None


def test_warm_parents_keep_spinning_while_the_service_is_down(team: Team) -> None:
    env = {**team.env, "DEVD_SERVICE_RUNS_TTL": "0"}
    team.devd("daemon", "stop", env=env)
    assert team.devd("daemon", "start", env=env).returncode == 0
    first = _spin(team, "inner_join", env=env)
    team.service.relay.down = True
    try:
        again = _spin(team, "inner_join", env=env)
        assert again["artifacts"] == first["artifacts"]
        notice = again["notices"][0]
        assert notice.startswith(f"service unreachable: using cached parents of run "
                                 f"{first['originRunId']}"), notice
        assert team.service.url in notice
        line = _one_line(team.devd("spin", "md_flow.py", "a", env=env))  # nothing cached
        assert f"Metaflow's metadata service at {team.service.url}" in line
    finally:
        team.service.relay.down = False
    team.devd("daemon", "stop", env=env)


def test_resume_runs_graph_staleness_and_hover_through_the_service(team: Team) -> None:
    """`devd resume` records through the service; `devd runs`, `devd graph` (states, task
    counts, a step whose code changed since the run) and the editor's hover read it."""
    from tests.wirehelp import Raw, request

    project = Path(tempfile.mkdtemp(prefix="dvmd"))  # a short path: Unix socket paths are
    env = team.env  # short; its own flow copy: edited below, the module's stays as it was
    try:
        for name in ("md_flow.py", "settings.json", "notes.txt"):
            shutil.copy(team.root / name, project / name)

        def devd(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*DEVD, *args], cwd=project, env=env, capture_output=True,
                                  text=True, timeout=600)

        before = team.service.relay.count()
        proc = devd("resume", "md_flow.py", "end", "--origin-run-id", team.run_id)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        resumed = proc.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1]
        posted = [path for method, path in team.service.relay.since(before) if method == "POST"]
        assert f"/flows/MdFlow/runs/{resumed}/steps/end/task" in posted, posted

        assert devd("daemon", "start").returncode == 0
        first = json.loads(devd("spin", "md_flow.py", "merge", "--json").stdout)
        assert first["ok"] and first["originRunId"] == resumed and not first.get("stale")
        proc = devd("runs", "md_flow.py", "--json")
        assert proc.returncode == 0, proc.stderr
        runs = json.loads(proc.stdout)["runs"]
        ids = [r["runId"] for r in runs]
        assert ids[0] == resumed and team.run_id in ids, ids
        assert {r["status"] for r in runs if r["runId"] in (resumed, team.run_id)} == {"ok"}

        proc = devd("graph", "md_flow.py", "--run", team.run_id, "--json")
        assert proc.returncode == 0, proc.stderr
        nodes = {n["step"]: n for n in json.loads(proc.stdout)["nodes"]}
        states = {step: node["state"] for step, node in nodes.items()}
        assert states == {**states, "slow": "not-run"}  # the switch went the fast way
        assert all(state == "ok" for step, state in states.items() if step != "slow"), states
        assert nodes["body"]["tasks"] == 15 and nodes["loop"]["tasks"] == 3
        assert not any(node.get("stale") for node in nodes.values())

        flow = project / "md_flow.py"
        flow.write_text(flow.read_text().replace("self.speed = 10", "self.speed = 11"))
        proc = devd("graph", "md_flow.py", "--run", team.run_id, "--json")
        stale = {n["step"] for n in json.loads(proc.stdout)["nodes"] if n.get("stale")}
        assert stale == {"fast"}, stale
        spun = json.loads(devd("spin", "md_flow.py", "merge", "--json").stdout)
        assert spun["ok"] and spun["originRunId"] == resumed
        assert [mark["step"] for mark in spun["stale"]] == ["fast"], spun.get("stale")

        # Hovers: a value of the last spin; a step not spun says where its parents come from.
        lines = flow.read_text().splitlines()
        seen = next(i for i, x in enumerate(lines) if "self.seen = " in x)
        total = next(i for i, x in enumerate(lines) if "self.total = " in x)
        old_runtime = os.environ.get("DEVD_RUNTIME_DIR")
        os.environ["DEVD_RUNTIME_DIR"] = env["DEVD_RUNTIME_DIR"]
        try:
            from devd.common.project import daemon_paths

            socket_path = daemon_paths(str(project)).socket
        finally:
            if old_runtime is None:
                os.environ.pop("DEVD_RUNTIME_DIR", None)
            else:
                os.environ["DEVD_RUNTIME_DIR"] = old_runtime
        with Raw(socket_path) as conn:
            conn.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
                "textDocument": {"uri": flow.as_uri(), "languageId": "python", "version": 1,
                                 "text": flow.read_text()}}})
            answers = []
            for i, (line, name) in enumerate(((seen, "seen"), (total, "all")), start=1):
                column = lines[line].index(f"self.{name}") + 6
                conn.send(request(i, "textDocument/hover", {
                    "textDocument": {"uri": flow.as_uri()},
                    "position": {"line": line, "character": column}}))
                answers.append(conn.answer(i, timeout=120)["result"]["contents"]["value"])
        assert "`int`" in answers[0] and "20" in answers[0], answers[0]
        assert f"its parents come from run {resumed}" in answers[1], answers[1]
        devd("daemon", "stop")
    finally:
        shutil.rmtree(project, ignore_errors=True)


def test_a_run_still_going_is_looked_at_again_on_every_spin(team: Team) -> None:
    """Last in the module: the run it records stays the newest (and going, for 30 s)."""
    env = {**team.env, "DEVD_SERVICE_RUNS_TTL": "0"}
    team.devd("daemon", "stop", env=env)
    assert team.devd("daemon", "start", env=env).returncode == 0
    first = _spin(team, "fan", env=env)
    # Another machine's run has just started (its heartbeat is fresh, no task ended yet).
    request = urllib.request.Request(
        team.service.url + "flows/MdFlow/run", method="POST",
        data=json.dumps({"user_name": "someone", "tags": [],
                         "system_tags": ["metaflow_version:2.19.39"]}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        going = str(json.loads(reply.read())["run_number"])
    for _ in range(2):
        before = team.counts()
        again = _spin(team, "fan", env=env)
        service, _ = team.asked(before)
        assert len(service) > 1, service  # the plan resolved again: the run may change
        assert again["originRunId"] == first["originRunId"] != going  # it holds no parents
    team.devd("daemon", "stop", env=env)
