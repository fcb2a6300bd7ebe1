"""Caches devd unpickles parents from cannot run another user's code (issues 22 and 25).

Metaflow's client cache defaults to /tmp/metaflow_client, one directory for the whole
machine: a second user who creates it first can plant a pickle (or task metadata naming
one) where a parent's artifact is cached. The squatted directory here is a stand-in named
with METAFLOW_CLIENT_CACHE_PATH (never the machine's real one); the attacker is a real
second Unix user (tests/otheruser.py). S3's own blob cache is tested in tests/test_s3.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.otheruser import attacker, wait_ready
from tests.wirehelp import cli, log_text, make_project


class _Poison:
    """Unpickling it appends the unpickling process's uid to ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        code = f"import os; open({self.marker!r}, 'a').write(str(os.geteuid()) + '\\n')"
        return exec, (code,)


def poison(marker: Path) -> bytes:
    return pickle.dumps(_Poison(str(marker)), protocol=2)


def shared_dir() -> Path:
    """A directory every user may create entries in, like /tmp (mode 1777)."""
    path = Path(tempfile.mkdtemp(prefix="dvcache-s"))
    path.chmod(0o1777)
    return path


@pytest.fixture(scope="module")
def cache_project(project: Path) -> Path:
    return make_project(project, ("linear_flow.py",), "dvcache-p", run=("linear_flow.py",))


def env_with(**values: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("METAFLOW_CLIENT_CACHE_PATH", "DEVD_RUNTIME_DIR", "XDG_CACHE_HOME")}
    for key, value in values.items():
        if value is not None:
            env[key] = value
    return env


def planted_files(root: Path, evil: bytes) -> dict[str, bytes]:
    """Where Metaflow's client cache keeps LinearFlow's parents, each holding ``evil``:
    every blob of the run under its own key, and every task's metadata naming ``evil``
    (under the key that is evil's own sha1) for each of its artifacts."""
    from metaflow.client.filecache import FileCache

    store = root / ".metaflow"
    flow = store / "LinearFlow"
    flow_id = FileCache.flow_ds_id("local", str(store), "LinearFlow")
    files = {}
    for blob in (flow / "data").glob("*/*"):
        if len(blob.name) == 40:
            files[f"{flow_id}/{blob.name[:2]}/{blob.name}.blob"] = evil
    evil_key = hashlib.sha1(evil).hexdigest()
    files[f"{flow_id}/{evil_key[:2]}/{evil_key}.blob"] = evil
    for data in flow.glob("*/*/*/0.data.json"):
        task_id, step, run_id = data.parts[-2], data.parts[-3], data.parts[-4]
        recorded = json.loads(data.read_text())
        metadata = {"objects": dict.fromkeys(recorded["objects"], evil_key),
                    "info": recorded["info"]}
        task_ds = FileCache.task_ds_id("local", str(store), "LinearFlow", run_id, step,
                                       task_id, 0)
        token = hashlib.sha1(os.path.join(run_id, step, task_id, "0", "metadata")
                             .encode()).hexdigest() + ".cached"
        files[f"{task_ds}/{token[:2]}/{token}"] = json.dumps(metadata).encode()
    return files


PLANT = """
    drop()
    target, spec = sys.argv[3], json.loads(open(sys.argv[4]).read())
    os.makedirs(target, exist_ok=True)
    for path, data in spec.items():
        full = os.path.join(target, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(bytes.fromhex(data))
    for folder, dirs, files in os.walk(target):  # as open as /tmp/metaflow_client gets
        os.chmod(folder, 0o777)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666)
    print("ready", flush=True)
"""


def plant(user: tuple[int, int], target: Path, files: dict[str, bytes]) -> None:
    """The other user creates ``target`` (0777) and writes ``files`` into it."""
    spec = Path(tempfile.mkdtemp(prefix="dvcache-spec")) / "spec.json"
    spec.write_text(json.dumps({k: v.hex() for k, v in files.items()}))
    spec.parent.chmod(0o755)
    spec.chmod(0o644)
    proc = attacker(user, PLANT, str(target), str(spec))
    wait_ready(proc)
    assert proc.wait(30) == 0
    assert os.stat(target).st_uid == user[0]


def spin_ok(root: Path, env: dict[str, str],
            daemon: bool = False) -> subprocess.CompletedProcess[str]:
    """A spin of LinearFlow's `double` that succeeds (through a daemon of its own: its
    stderr is then the daemon's log)."""
    if not daemon:
        out = cli(root, "spin", "--no-daemon", "linear_flow.py", "double", env=env,
                  timeout=300)
    else:
        env = {**env, "DEVD_RUNTIME_DIR": tempfile.mkdtemp(prefix="dvcache-rt")}
        try:
            started = cli(root, "daemon", "start", str(root), env=env)
            assert "daemon started" in started.stdout, started.stdout + started.stderr
            out = cli(root, "spin", "linear_flow.py", "double", env=env, timeout=300)
        finally:
            cli(root, "daemon", "stop", str(root), env=env)
        log = next(Path(env["DEVD_RUNTIME_DIR"]).glob("*/daemon.log"))
        out = subprocess.CompletedProcess(out.args, out.returncode, out.stdout, log_text(str(log)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "y is 12" in out.stdout, out.stdout
    return out


# -- issue 25: a squatted Metaflow client cache ---------------------------------------------

@pytest.mark.parametrize("daemon", [False, True], ids=["no-daemon", "daemon"])
def test_a_pickle_planted_in_a_squatted_client_cache_never_runs(
        other_user: tuple[int, int], cache_project: Path, daemon: bool) -> None:
    """Another user made the client cache directory first (0777) and planted pickles at
    every path LinearFlow's parents are cached at, and task metadata pointing at one:
    the owner's spin runs none of them, still succeeds, and says in one line which
    directory it left alone and which variable moves it."""
    shared = shared_dir()
    marker = shared / "ran"
    squat = shared / "metaflow_client"
    plant(other_user, squat, planted_files(cache_project, poison(marker)))
    out = spin_ok(cache_project, env_with(METAFLOW_CLIENT_CACHE_PATH=str(squat),
                                          XDG_CACHE_HOME=str(shared / "xdg")), daemon)
    assert not marker.exists(), f"code ran as uid {marker.read_text()}"
    lines = [x for x in out.stderr.splitlines() if str(squat) in x]
    assert len(lines) == 1 and "METAFLOW_CLIENT_CACHE_PATH" in lines[0], out.stderr
    assert "belongs to another user" in lines[0]


def test_the_default_client_cache_is_the_users_own(cache_project: Path) -> None:
    """With METAFLOW_CLIENT_CACHE_PATH unset, devd's reads cache in a per-user 0700
    directory, never in the machine-wide /tmp/metaflow_client."""
    home = Path(tempfile.mkdtemp(prefix="dvcache-h"))
    spin_ok(cache_project, env_with(XDG_CACHE_HOME=str(home / "cache")))
    own = home / "cache" / "devd" / "metaflow-client"
    assert own.is_dir() and stat.S_IMODE(own.stat().st_mode) == 0o700
    assert own.stat().st_uid == os.geteuid()
    assert list(own.rglob("*.blob")) or list(own.rglob("*.cached"))  # it was used


def test_a_blob_that_is_not_its_key_is_dropped_and_read_again(cache_project: Path) -> None:
    """Even in the user's own cache, a blob whose bytes are not its key's content (a
    poisoned or a damaged one) is never unpickled: it is dropped, logged, and the
    artifact read from the datastore again (the cache then holds the right bytes)."""
    shared = shared_dir()
    marker = shared / "ran"
    own = Path(tempfile.mkdtemp(prefix="dvcache-o")) / "client-cache"
    env = env_with(METAFLOW_CLIENT_CACHE_PATH=str(own), XDG_CACHE_HOME=str(shared / "x"))
    spin_ok(cache_project, env)  # fills the cache
    blobs = list(own.rglob("*.blob"))
    assert blobs, list(own.rglob("*"))
    for blob in blobs:
        blob.write_bytes(poison(marker))
    out = spin_ok(cache_project, env)
    assert not marker.exists(), f"code ran as uid {marker.read_text()}"
    assert "dropped" in out.stderr and "not the blob its name says" in out.stderr, out.stderr
    for blob in own.rglob("*.blob"):
        assert hashlib.sha1(blob.read_bytes()).hexdigest() == blob.name[:-len(".blob")]


# -- issue 22, item 10: a deleted blob -------------------------------------------------------

def test_a_deleted_parent_blob_is_named_in_one_line(project: Path) -> None:
    root = make_project(project, ("linear_flow.py",), "dvcache-d", run=("linear_flow.py",))
    data = next((root / ".metaflow" / "LinearFlow").glob("*/start/*/0.data.json"))
    key = json.loads(data.read_text())["objects"]["x"]
    blob = root / ".metaflow" / "LinearFlow" / "data" / key[:2] / key
    blob.unlink()
    out = cli(root, "spin", "--no-daemon", "linear_flow.py", "double",
              env=env_with(XDG_CACHE_HOME=str(root / "xdg")), timeout=300)
    assert out.returncode != 0
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert "Traceback" not in out.stderr and "NoneType" not in out.stderr, out.stderr
    assert any("artifact 'x'" in x and "missing" in x and key in x
               and "devd run" in x for x in lines), out.stderr
