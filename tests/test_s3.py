"""Spins of runs recorded in S3: a real S3-compatible server (moto's server mode) on
loopback, a bucket made here, a flow run for real with ``--datastore=s3`` against it.

Everything that touches S3 runs in subprocesses (the flow, the daemon, the CLI, a
checker using devd's Python API): Metaflow reads its datastore configuration once, when
first imported, and this pytest process is configured for the local datastore.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import pickle
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import daemon_environment
from tests.s3server import S3Server

DEVD = [sys.executable, "-m", "devd.cli"]
BLOB_BYTES = 6 << 20  # the big parent artifact: over DEVD_EAGER_MB, incompressible

S3_FLOW = '''\
import os
import random

from metaflow import Config, FlowSpec, card, current, step


class S3Flow(FlowSpec):
    settings = Config("settings", default="settings.json")

    @card
    @step
    def start(self):
        self.items = [2, 3]
        self.lr = self.settings["lr"]
        size = int(os.environ.get("S3FLOW_BLOB_BYTES", "1024"))
        self.blob = random.Random(7).randbytes(size)  # incompressible, the same every time
        current.card.append(__import__("metaflow").cards.Markdown("# lr %s" % self.lr))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.sq = self.input ** 2
        self.blob_len = len(self.blob)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [inp.sq for inp in inputs]
        self.merge_artifacts(inputs, exclude=["sq", "blob_len"])
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.squares) + len(self.blob)


if __name__ == "__main__":
    S3Flow()
'''

# Spins every task of the run in-process (devd's Python API) and compares each with what
# Metaflow's Client shows for the recorded task; then one --persist spin read back.
CHECKER = '''\
import json, sys
from metaflow import Flow, Task, namespace
import devd
from devd import Session

namespace(None)
run = Flow("S3Flow")[sys.argv[1]]
report = {"spun": [], "bad": []}
with Session("s3_flow.py") as session:
    for step in run:
        for task in step:
            result = session.spin(task.pathspec)
            report["spun"].append(task.pathspec)
            if not result.ok:
                report["bad"].append([task.pathspec, "failed", str(result.error)])
                continue
            for artifact in task:
                if artifact.id.startswith("_"):
                    continue
                if result.artifacts[artifact.id] != artifact.data:
                    report["bad"].append([task.pathspec, artifact.id])
persisted = devd.spin("s3_flow.py", run["end"].task.pathspec, persist=True)
report["persisted"] = Task(persisted.pathspec, _namespace_check=False,
                           _current_metadata="spin@.").data.total
meta = Task(persisted.pathspec, _namespace_check=False,
            _current_metadata="spin@.").metadata_dict
report["persisted_ds"] = [meta.get("ds-type"), meta.get("ds-root")]
print("REPORT " + json.dumps(report))
'''


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    server.create_bucket("devd-team")
    yield server
    server.close()


@pytest.fixture(scope="module")
def s3_project(s3: S3Server) -> Iterator[tuple[Path, dict[str, str], str]]:
    """A project whose flow ran with --datastore=s3 on the loopback server; its env."""
    root = Path(tempfile.mkdtemp(prefix="devd-s3-"))
    (root / "s3_flow.py").write_text(S3_FLOW)
    (root / "settings.json").write_text(json.dumps({"lr": 0.25}))
    (root / "checker.py").write_text(CHECKER)
    env = {**os.environ, **s3.env("devd-team"), "S3FLOW_BLOB_BYTES": str(BLOB_BYTES),
           "METAFLOW_CLIENT_CACHE_PATH": str(root / "client-cache"),
           "XDG_CACHE_HOME": str(root / "xdg-cache"),  # devd's default caches go here
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # `devd run` passes --datastore=s3 through to Metaflow (before `run`, where it belongs)
    proc = subprocess.run([*DEVD, "run", "s3_flow.py", "--datastore=s3"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_id = proc.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    with daemon_environment("devd-s3-rt-") as runtime:
        env["DEVD_RUNTIME_DIR"] = runtime
        yield root, env, run_id
        subprocess.run([*DEVD, "daemon", "stop"], cwd=root, env=env, capture_output=True,
                       timeout=60)
        shutil.rmtree(runtime, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


def test_run_options_for_remote_compute_and_stores_go_to_metaflow_unchanged() -> None:
    from devd.core.runner import build_command

    command = build_command("flow.py", "run", ["--with", "kubernetes", "--datastore=s3",
                                               "--max-workers", "4"], "id-file", "py")
    assert command == ["py", "flow.py", "--with", "kubernetes", "--datastore=s3", "run",
                       "--max-workers", "4", "--run-id-file", "id-file"]


def devd(root: Path, env: dict[str, str], *args: str,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEVD, *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout)


def data_gets(s3: S3Server, since: int) -> int:
    """Bytes the server sent since ``since`` (the relay's counter)."""
    return s3.relay.bytes_down - since


def test_every_task_of_an_s3_run_is_reproduced_and_persist_goes_local(s3_project) -> None:
    root, env, run_id = s3_project
    proc = subprocess.run([sys.executable, "checker.py", run_id], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("REPORT ")), None)
    assert line is not None, proc.stdout + proc.stderr
    report = json.loads(line[len("REPORT "):])
    assert len(report["spun"]) == 5  # start, body x2, join, end
    assert report["bad"] == []
    assert report["persisted"] == 13 + BLOB_BYTES
    ds_type, ds_root = report["persisted_ds"]  # as Metaflow's spin: the local spin store
    assert ds_type == "spin" and ds_root.startswith(str(root / ".metaflow_spin")), ds_root


def test_recorded_cards_of_an_s3_run(s3_project) -> None:
    root, env, run_id = s3_project
    proc = devd(root, env, "card", "s3_flow.py", f"S3Flow/{run_id}/start/1", "--recorded")
    assert proc.returncode == 0, proc.stderr
    page = html.unescape(Path(proc.stdout.strip().splitlines()[-1]).read_text())
    assert 'data-card-type="default"' in page  # the card Metaflow stored in S3
    decoded = [base64.b64decode(chunk).decode("utf-8", "replace")
               for chunk in re.findall(r"[A-Za-z0-9+/=]{200,}", page)
               if len(chunk) % 4 == 0]
    assert any("lr 0.25" in text for text in decoded)  # its Markdown, as recorded


def test_daemon_downloads_parents_once_and_a_restart_reads_the_disk_cache(
        s3: S3Server, s3_project) -> None:
    root, env, _ = s3_project
    env = {**env, "DEVD_BLOB_CACHE": str(root / "blob-cache")}
    devd(root, env, "daemon", "stop")
    assert devd(root, env, "daemon", "start").returncode == 0
    before = s3.relay.bytes_down
    first = devd(root, env, "spin", "s3_flow.py", "end", "--json")
    data = json.loads(first.stdout)
    assert data["ok"], first.stdout + first.stderr
    assert data_gets(s3, before) > BLOB_BYTES  # the big blob came through the server
    assert "Traceback" not in first.stderr
    blobs = list((root / "blob-cache").rglob("*.raw"))  # kept decompressed
    assert blobs and sum(b.stat().st_size for b in blobs) > BLOB_BYTES
    before = s3.relay.bytes_down
    again = json.loads(devd(root, env, "spin", "s3_flow.py", "end", "--json").stdout)
    assert again["ok"] and data_gets(s3, before) < 200_000  # no blob again (listing only)
    assert devd(root, env, "daemon", "stop").returncode == 0
    assert devd(root, env, "daemon", "start").returncode == 0
    before = s3.relay.bytes_down
    restarted = json.loads(devd(root, env, "spin", "s3_flow.py", "end", "--json").stdout)
    assert restarted["ok"] and data_gets(s3, before) < 200_000
    assert restarted["artifacts"] == again["artifacts"]


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "botocore" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_unreachable_endpoint_and_missing_credentials_are_one_line(s3_project) -> None:
    root, env, _ = s3_project
    dead = {**env, "METAFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9",
            "DEVD_BLOB_CACHE": str(root / "cache-dead")}
    started = time.monotonic()
    line = _one_line_error(devd(root, dead, "spin", "--no-daemon", "s3_flow.py", "end"))
    assert "s3://devd-team/metaflow" in line and "cannot reach http://127.0.0.1:9" in line
    assert time.monotonic() - started < 60
    nocreds = {k: v for k, v in env.items() if not k.startswith("AWS_ACCESS")
               and not k.startswith("AWS_SECRET")}
    nocreds.update(AWS_SHARED_CREDENTIALS_FILE=str(root / "none"),
                   AWS_CONFIG_FILE=str(root / "none"), DEVD_BLOB_CACHE=str(root / "cache-nc"))
    line = _one_line_error(devd(root, nocreds, "spin", "--no-daemon", "s3_flow.py", "end"))
    assert "no AWS credentials" in line and "s3://devd-team/metaflow" in line


def test_a_missing_object_names_the_task_and_the_store(s3: S3Server, s3_project) -> None:
    root, env, run_id = s3_project
    client = s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="devd-team",
                                                      Prefix="metaflow/S3Flow/data/")
            .get("Contents", []) if o["Size"] > BLOB_BYTES // 2]
    assert len(keys) == 1  # the big blob, read by every task but start
    saved = client.get_object(Bucket="devd-team", Key=keys[0])
    body, meta = saved["Body"].read(), saved["Metadata"]
    client.delete_object(Bucket="devd-team", Key=keys[0])
    try:
        env = {**env, "DEVD_BLOB_CACHE": str(root / "cache-missing"), "DEVD_EAGER_MB": "100"}
        line = _one_line_error(devd(root, env, "spin", "--no-daemon", "s3_flow.py",
                                    f"{run_id}/body"))
        assert f"S3Flow/{run_id}/start/1" in line and "missing" in line
        assert "s3://devd-team/metaflow" in line
    finally:
        client.put_object(Bucket="devd-team", Key=keys[0], Body=body, Metadata=meta)


def test_a_hung_endpoint_times_out(s3: S3Server, s3_project) -> None:
    root, env, _ = s3_project
    s3.relay.hang = True
    try:
        env = {**env, "DEVD_S3_TIMEOUT": "2", "DEVD_BLOB_CACHE": str(root / "cache-hung")}
        started = time.monotonic()
        line = _one_line_error(devd(root, env, "spin", "--no-daemon", "s3_flow.py", "end"))
        assert "s3://devd-team/metaflow" in line and "DEVD_S3_TIMEOUT" in line
        assert time.monotonic() - started < 60
    finally:
        s3.relay.hang = False


def _spin_while_downloading(s3: S3Server, root: Path, env: dict[str, str], cache: str,
                            target: str, eager: bool) -> subprocess.Popen[str]:
    """A daemon spin of ``target`` with the big blob coming slowly: in the daemon itself
    (``eager``: all parents loaded up front) or, as by default, in the spin's child when
    the step first reads it."""
    env = {**env, "DEVD_BLOB_CACHE": str(root / cache)}
    if eager:
        env["DEVD_EAGER_MB"] = "100"
    devd(root, env, "daemon", "stop")
    assert devd(root, env, "daemon", "start").returncode == 0
    s3.relay.rate = 1 << 20  # 1 MB/s: the 6 MB blob takes seconds
    before = s3.relay.bytes_down
    proc = subprocess.Popen([*DEVD, "spin", "s3_flow.py", target], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while s3.relay.bytes_down - before < (2 << 20):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    return proc


def test_cancel_during_a_download_stops_it(s3: S3Server, s3_project) -> None:
    root, env, _ = s3_project
    try:
        proc = _spin_while_downloading(s3, root, env, "cache-cancel", "end", eager=True)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the daemon cancels the client's spin
        proc.communicate(timeout=60)
        time.sleep(2)  # the transfer stops within a chunk
        settled = s3.relay.bytes_down
        time.sleep(2)
        assert s3.relay.bytes_down - settled < (1 << 20)
        assert not list((root / "cache-cancel").rglob(".part-*"))  # nothing half-written
        status = devd(root, env, "status")
        assert status.returncode == 0, status.stderr
    finally:
        s3.relay.rate = None


def test_an_editor_gets_download_progress_on_a_token_the_daemon_creates(
        s3: S3Server, s3_project) -> None:
    """An LSP client that supports window/workDoneProgress sees $/progress begin, reports
    and end while the daemon downloads the parents of its spin."""
    from devd.cli.client import DaemonClient, file_uri
    from devd.common.project import daemon_paths

    root, env, _ = s3_project
    env = {**env, "DEVD_BLOB_CACHE": str(root / "cache-lsp"), "DEVD_EAGER_MB": "100"}
    devd(root, env, "daemon", "stop")
    assert devd(root, env, "daemon", "start").returncode == 0
    s3.relay.rate = 3 << 20  # the 6 MB blob takes about two seconds
    seen: list[tuple[str, object]] = []
    try:
        with DaemonClient(daemon_paths(str(root)), timeout=120) as client:
            client.request("initialize", {"processId": None, "rootUri": file_uri(str(root)),
                                          "capabilities": {"window": {"workDoneProgress": True}}})
            client._send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
            result = client.request("devd/spin", {"uri": file_uri(str(root / "s3_flow.py")),
                                                  "step": "end"},
                                    on_notification=lambda m, p: seen.append((m, p)))
    finally:
        s3.relay.rate = None
    assert result["ok"], result
    values = [p["value"] for m, p in seen if m == "$/progress"]  # type: ignore[index]
    assert values and values[0]["kind"] == "begin" and values[-1]["kind"] == "end", values
    reports = [v for v in values if v["kind"] == "report"]
    assert reports and "downloading" in reports[-1]["message"]
    assert reports[-1]["percentage"] >= reports[0]["percentage"]


def _bucket_blobs(s3: S3Server) -> dict[str, int]:
    """Every blob of S3Flow in the bucket: key to stored size."""
    listing = s3.client().list_objects_v2(Bucket="devd-team", Prefix="metaflow/S3Flow/data/")
    return {o["Key"].rsplit("/", 1)[-1]: o["Size"] for o in listing.get("Contents", [])}


def test_the_blob_cache_is_the_users_own_by_default(s3_project) -> None:
    """Issue 22, item 2: with DEVD_BLOB_CACHE unset, blobs go to a per-user 0700
    directory ($XDG_CACHE_HOME/devd/blobs), not under the machine-wide client cache."""
    root, env, _ = s3_project
    env = {k: v for k, v in env.items() if k != "DEVD_BLOB_CACHE"}
    env["DEVD_EAGER_MB"] = "100"
    proc = devd(root, env, "spin", "--no-daemon", "s3_flow.py", "end")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    own = root / "xdg-cache" / "devd" / "blobs"
    assert stat.S_IMODE(own.stat().st_mode) == 0o700 and own.stat().st_uid == os.geteuid()
    assert sum(b.stat().st_size for b in own.rglob("*.raw")) > BLOB_BYTES
    assert not (root / "client-cache" / "devd-blobs").exists()


PLANT_BLOBS = """
    drop()
    cache, evil, keys = sys.argv[3], bytes.fromhex(sys.argv[4]), json.loads(sys.argv[5])
    for key in keys:
        os.makedirs(os.path.dirname(os.path.join(cache, key)), exist_ok=True)
        with open(os.path.join(cache, key), "wb") as fh:
            fh.write(evil)
    for folder, _dirs, _files in os.walk(cache):
        os.chmod(folder, 0o777)
    print("ready", flush=True)
"""


class _Poison:
    """Unpickling it appends the unpickling process's uid to ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"import os; open({self.marker!r}, 'a').write(str(os.geteuid()))",)


def test_a_squatted_blob_cache_is_refused_and_runs_nothing(
        other_user: tuple[int, int], s3: S3Server, s3_project) -> None:
    """Issue 22, item 2: another user made the blob cache directory first and planted a
    pickle under every blob's key (keys anyone who can read the bucket can compute): the
    spin refuses it in one line naming it and DEVD_BLOB_CACHE, and runs none of them.
    A directory of the user's own under another user's is refused too."""
    from devd.common.blobcache import store_id
    from tests.otheruser import attacker, wait_ready

    root, env, _ = s3_project
    shared = Path(tempfile.mkdtemp(prefix="dvcache-s3"))
    shared.chmod(0o1777)
    squat, marker = shared / "blobs", shared / "ran"
    store = store_id("s3://devd-team/metaflow")
    keys = [f"{store}/S3Flow/{k[:2]}/{k}.raw" for k in _bucket_blobs(s3)]
    evil = pickle.dumps(_Poison(str(marker)), protocol=2).hex()
    proc = attacker(other_user, PLANT_BLOBS, str(squat), evil, json.dumps(keys))
    wait_ready(proc)
    assert proc.wait(30) == 0
    for cache in (squat, squat / "mine"):
        env_ = {**env, "DEVD_BLOB_CACHE": str(cache), "DEVD_EAGER_MB": "100"}
        line = _one_line_error(devd(root, env_, "spin", "--no-daemon", "s3_flow.py", "end"))
        assert str(squat) in line and "DEVD_BLOB_CACHE" in line, line
        assert "another user" in line, line
        assert not marker.exists(), f"code ran as uid {marker.read_text()}"


def test_a_damaged_cached_blob_is_dropped_and_downloaded_again(
        s3: S3Server, s3_project) -> None:
    """Issue 22, item 7: a truncated blob (and a same-size damaged one) in the disk cache
    is found, dropped, logged and downloaded again; the next spin, also in a new
    process, succeeds."""
    root, env, _ = s3_project
    cache = root / "cache-heal"
    env = {**env, "DEVD_BLOB_CACHE": str(cache), "DEVD_EAGER_MB": "100"}
    first = devd(root, env, "spin", "--no-daemon", "s3_flow.py", "end")
    assert first.returncode == 0, first.stdout + first.stderr
    blobs = sorted(cache.rglob("*.raw"), key=lambda p: p.stat().st_size)
    big, small = blobs[-1], blobs[:-1]
    with open(big, "r+b") as fh:
        fh.truncate(big.stat().st_size // 2)
    for blob in small:  # same size, not a pickle any more
        blob.write_bytes(b"\0" * blob.stat().st_size)
    before = s3.relay.bytes_down
    again = devd(root, env, "spin", "--no-daemon", "s3_flow.py", "end")
    assert again.returncode == 0, again.stdout + again.stderr
    assert data_gets(s3, before) > BLOB_BYTES  # the big blob came again
    damaged = [x for x in again.stderr.splitlines() if "damaged" in x]
    assert any(str(big) in x for x in damaged), again.stderr
    assert all("downloading it again" in x for x in damaged), again.stderr
    for blob in cache.rglob("*.raw"):
        assert hashlib.sha1(blob.read_bytes()).hexdigest() == blob.name[:-len(".raw")]


def test_server_stopped_mid_download(s3: S3Server, s3_project) -> None:
    """Last in this module: the relay (the endpoint the env names) is gone afterwards.
    `body` reads the big blob, which the spin's child downloads (lazily, as by default)."""
    root, env, run_id = s3_project
    proc = _spin_while_downloading(s3, root, env, "cache-stop", f"{run_id}/body", eager=False)
    s3.relay.stop()  # the server goes away mid-transfer
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1  # the step failed, on this one line:
    assert "Traceback" not in err and "botocore" not in err
    error = [x for x in err.splitlines() if "cannot read parent task" in x]
    assert len(error) == 1, err
    assert f"S3Flow/{run_id}/start/1 from s3://devd-team/metaflow" in error[0]
    assert "broke off mid-download" in error[0]
    # the child's download progress reached the terminal ($/progress through the daemon)
    assert any(x.startswith("devd: downloading") for x in err.splitlines()), err
    assert devd(root, env, "status").returncode == 0  # the daemon lives on


KEPT = '''\
import json, sys
from metaflow import Flow, namespace
from devd import Session

namespace(None)
body = Flow("S3Flow")[sys.argv[1]]["body"].tasks().__next__().pathspec
with Session("s3_flow.py") as session:
    session.spin(body)  # the child downloads and loads the blob; then it is warmed here
    session.wait_warm()
    warm = session.spin(body)
print("KEPT " + json.dumps([warm.ok, warm.parents_kept]))
'''


def test_a_parent_read_from_the_s3_cache_is_vouched_for_by_the_page_map(s3_project) -> None:
    """Issue 18: the 6 MB blob, downloaded into devd's disk cache and unpickled from it,
    read by the step and left as it was: passed down on the page map's word."""
    root, env, run_id = s3_project
    (root / "kept.py").write_text(KEPT)
    proc = subprocess.run([sys.executable, "kept.py", run_id], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("KEPT ")), None)
    assert line is not None, proc.stdout + proc.stderr
    assert json.loads(line[5:]) == [True, {"blob": "page map"}]
