"""A step spun in the interpreter Metaflow runs it in (issue 24), tested as Metaflow tests
its decorators: a Metaflow extension in the test's own directory
(``metaflow_extensions/devdtest/``) with a step decorator whose ``runtime_step_cli`` points
the task at a second virtualenv, as ``@conda``/``@pypi`` point it at theirs. That venv
holds ``termcolor`` 2.3.0, which devd's own venv lacks; ``python flow.py run`` records the
step from there, and every spin must run it there too: from the CLI, through a daemon (its
warm worker, reused), and through ``devd mcp``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import venvstep
from tests.conftest import daemon_environment, run_flow
from tests.venvstep import PACKAGE, VERSION

FLOW = '''\
import os
import sys
import time

from metaflow import FlowSpec, step, venv_step


class EnvFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.unread = list(range(1000))  # train never reads it: passed down as it is
        self.next(self.train)

    @venv_step(python={python!r})
    @step
    def train(self):
        from importlib.metadata import version

        import termcolor  # only the step's environment has it

        time.sleep(getattr(self, "nap", 0))
        self.python = sys.executable
        self.venv = os.path.basename(sys.prefix)
        self.package = version("termcolor")
        self.parent_pid = os.getppid()
        self.y = self.x + 1
        print("train in", sys.executable, self.package, termcolor.colored("ok", "green"))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    EnvFlow()
'''
PYPI_FLOW = '''\
from metaflow import FlowSpec, pypi, step


class PypiFlow(FlowSpec):
    @pypi(packages={"termcolor": "2.3.0"})
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PypiFlow()
'''
UV_FLOW = '''\
import sys

from metaflow import FlowSpec, step


class UvFlow(FlowSpec):
    @step
    def start(self):
        from importlib.metadata import version

        print("start in", sys.executable, version("termcolor"))
        self.package = version("termcolor")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UvFlow()
'''


@pytest.fixture(scope="session")
def second_venv() -> Path:
    try:
        return venvstep.second_venv()
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def env_project(second_venv: Path) -> Iterator[Path]:
    """A project with the extension and a flow whose `train` runs in the second venv, run
    once for real; the extension is on PYTHONPATH for every process of the test."""
    assert importlib.util.find_spec(PACKAGE) is None, f"devd's venv must lack {PACKAGE}"
    root = Path(tempfile.mkdtemp(prefix="dse"))
    venvstep.write_extension(root)
    (root / "flow.py").write_text(FLOW.format(python=str(second_venv / "bin" / "python")))
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), previous) if p)
    try:
        with daemon_environment("dse"):
            run_flow(root, "flow.py")
            yield root
            devd(root, "daemon", "stop", str(root))
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def devd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=os.environ.copy())


def values(data: dict[str, Any]) -> dict[str, str]:
    """The artifacts' summaries of a spin's JSON, strings without their quotes."""
    return {row["name"]: row["summary"].split(": ", 1)[-1].strip("'")
            for row in data["artifacts"]}


def assert_in_second_venv(data: dict[str, Any], venv: Path) -> None:
    assert data["ok"], data.get("error")
    got = values(data)  # summaries: a long path is cut, its line in stdout is whole
    assert f"train in {venv / 'bin' / 'python'} {VERSION}" in data["stdout"]
    assert got["venv"] == venv.name
    assert got["package"] == VERSION
    assert got["y"] == "2"
    assert data["environment"]["name"] == "@venv_step"
    assert data["environment"]["python"] == str(venv / "bin" / "python")
    assert data["environment"]["version"] == f"{sys.version_info[0]}.{sys.version_info[1]}"


def test_the_run_recorded_the_step_in_the_second_venv(env_project: Path,
                                                       second_venv: Path) -> None:
    from metaflow import Flow, namespace

    from devd.core.metaflowenv import bind_metaflow_root

    os.chdir(env_project)
    bind_metaflow_root()  # Metaflow keeps the .metaflow an earlier test's project bound
    namespace(None)
    task = Flow("EnvFlow").latest_run["train"].task
    assert task.data.python == str(second_venv / "bin" / "python")
    assert task.data.package == VERSION


def test_a_workers_spin_sends_unread_parent_values_as_references(env_project: Path,
                                                                second_venv: Path) -> None:
    """A parent's value the step did not touch is not loaded and pickled by the worker:
    the result names where it comes from, and the spinning process reads it from its own
    store (a fresh interpreter: the extension must be imported before Metaflow is)."""
    script = """
import json
from devd.core.session import Session
with Session("flow.py") as session:
    r = session.spin("train")
    print(json.dumps({"ok": r.ok, "env": (r.environment or {}).get("name"),
                      "passed": r.passed_down.get("unread"),
                      "unread": r.artifacts["unread"] == list(range(1000)),
                      "package": r.all_values["package"]}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=env_project,
                          capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["ok"] and got["env"] == "@venv_step"
    parent, name = got["passed"]
    assert name == "unread" and parent.endswith("/start/1")
    assert got["unread"] is True
    assert got["package"] == VERSION  # what the step set came pickled


VALUES_FLOW = '''\
from metaflow import FlowSpec, step, venv_step


class WorkerValuesFlow(FlowSpec):
    @step
    def start(self):
        self.numbers = list(range(50_000))  # read by train: it comes back as train's own
        self.table = {{"a": (1, 2.5), "b": {{3, 4}}}}
        self.next(self.train)

    @venv_step(python={python!r})
    @step
    def train(self):
        import termcolor  # noqa: F401 - only the step's environment has it

        class Point:  # made in the step: only cloudpickle carries it (by value)
            def __init__(self, x):
                self.x = x

        self.total = sum(self.numbers)
        self.seen = self.table
        self.blob = bytes(range(256)) * 12_000  # 3 MB, set by the step
        self.point = Point(7)  # the child pickles values with cloudpickle
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WorkerValuesFlow()
'''


def test_a_workers_values_come_back_as_the_daemons_own_spin_gives_them(
        env_project: Path, second_venv: Path) -> None:
    """The values a step set or read cross from the worker's child to the spinning process
    as the child pickled them (never unpickled and pickled again in the worker): equal, of
    their own types, a 3 MB bytes value whole, and an object of a class made in the step,
    which only cloudpickle carries and the daemon's own spins give too (a worker that
    pickled the values again left it out)."""
    (env_project / "values_flow.py").write_text(
        VALUES_FLOW.format(python=str(second_venv / "bin" / "python")))
    run_flow(env_project, "values_flow.py", check=False)  # train's Point: it cannot store
    script = """
import json
from devd.core.session import Session
with Session("values_flow.py") as session:
    for _ in range(2):  # the second from the worker's prepared child
        r = session.spin("train")
        a = r.artifacts
        print(json.dumps({
            "ok": r.ok, "env": (r.environment or {}).get("name"), "notices": r.notices,
            "numbers": type(a["numbers"]).__name__ == "list"
                       and a["numbers"] == list(range(50_000)),
            "total": a["total"] == sum(range(50_000)),
            "seen": a["seen"] == {"a": (1, 2.5), "b": {3, 4}}
                    and type(a["seen"]["b"]).__name__ == "set",
            "blob": type(a["blob"]).__name__ == "bytes"
                    and a["blob"] == bytes(range(256)) * 12_000,
            "point": [type(a["point"]).__name__, a["point"].x] if "point" in a
                     else "missing"}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=env_project,
                          capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.strip().splitlines()[-2:]:
        got = json.loads(line)
        assert got["ok"] and got["env"] == "@venv_step", got
        assert got["numbers"] and got["total"] and got["seen"] and got["blob"], got
        assert got["point"] == ["Point", 7], got
        assert any("`point` cannot be pickled" in n for n in got["notices"]), got


def test_the_cli_spins_the_step_in_its_interpreter(env_project: Path,
                                                  second_venv: Path) -> None:
    proc = devd(env_project, "spin", "flow.py", "train", "--no-daemon", "--json")
    data = json.loads(proc.stdout)
    assert_in_second_venv(data, second_venv)


def test_a_daemon_spins_it_in_a_warm_worker_reused_and_reports_its_death(
        env_project: Path, second_venv: Path) -> None:
    from tests.test_daemon import call, start_client

    async def scenario() -> None:
        lsp = await start_client(env_project, {})
        try:
            params = {"uri": (env_project / "flow.py").as_uri(), "step": "train"}
            first = await call(lsp, "devd/spin", params)
            assert_in_second_venv(first, second_venv)
            worker = first["environment"]["worker"]
            second = await call(lsp, "devd/spin", {**params, "webview": {"nonce": "N" * 24}})
            assert_in_second_venv(second, second_venv)
            # the pane's header names the environment (the preview comes with spinFinished)
            for _ in range(100):
                previews = [f["preview"]["html"] for f in lsp.devd_finished
                            if (f.get("preview") or {}).get("html")]
                if previews:
                    break
                await asyncio.sleep(0.1)
            version = f"{sys.version_info[0]}.{sys.version_info[1]}"  # the venv outside
            assert f"env: @venv_step · {second_venv}/bin/python {version}</span>" \
                in previews[-1]  # the project: its full path
            # warm: the same worker, and the step forked from it (its parent is the worker)
            assert second["environment"]["worker"] == worker
            assert values(second)["parent_pid"] == str(worker)
            status = await call(lsp, "devd/status", {})
            assert [w["pid"] for w in status["workers"]] == [worker]
            assert status["workers"][0]["python"] == str(second_venv / "bin" / "python")
            assert status["workers"][0]["spins"] == 2

            # the worker dies mid-spin: that spin fails with one line, as a child's crash
            slow = asyncio.ensure_future(call(lsp, "devd/spin",
                                              {**params, "artifacts": {"nap": 60}}))
            await asyncio.sleep(3)
            os.kill(worker, signal.SIGKILL)
            died = await asyncio.wait_for(slow, 60)
            assert not died["ok"]
            assert died["error"]["type"] == "devd.WorkerDied"
            assert f"(pid {worker}) died (SIGKILL)" in died["error"]["message"]
            again = await call(lsp, "devd/spin", params)  # a new worker takes over
            assert_in_second_venv(again, second_venv)
            assert again["environment"]["worker"] != worker
        finally:
            await lsp.shutdown_session()
            await lsp.stop()

    asyncio.run(scenario())
    status = devd(env_project, "status", str(env_project))
    assert f"worker: @venv_step in {second_venv / 'bin' / 'python'}" in status.stdout


def test_devd_mcp_spins_it_there_too(env_project: Path, second_venv: Path) -> None:
    from tests.test_mcp import session, text_of

    async def scenario() -> dict[str, Any]:
        async with session(env_project) as client:
            result = await client.call_tool("spin", {"flow": "flow.py", "step": "train"})
            assert not result.is_error, text_of(result)
            data: dict[str, Any] = json.loads(text_of(result))
            return data

    assert_in_second_venv(asyncio.run(scenario()), second_venv)


def test_an_environment_not_created_here_says_which_command_creates_it(
        tmp_path: Path) -> None:
    (tmp_path / "pypi_flow.py").write_text(PYPI_FLOW)
    for extra in ([], ["--environment=pypi"], ["--environment", "conda"]):
        proc = devd(tmp_path, "spin", "pypi_flow.py", "start", "--no-daemon", *extra)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        name = "conda" if "conda" in extra else "pypi"  # without one: the @pypi step's own
        assert f"`python pypi_flow.py --environment={name} run` creates it" in lines[0]
        assert lines[0].startswith("devd: step 'start' runs in its ")


def test_uv_spins_in_the_interpreter_the_run_was_launched_with(
        tmp_path: Path, second_venv: Path) -> None:
    """Metaflow runs local uv steps in the launching interpreter: `uv run python flow.py`
    makes that the uv project's .venv, here a link to the second venv."""
    (tmp_path / "uv_flow.py").write_text(UV_FLOW)
    no_lock = devd(tmp_path, "spin", "uv_flow.py", "start", "--no-daemon",
                   "--environment=uv")
    assert no_lock.returncode == 2
    assert "--environment=uv: no uv.lock in" in no_lock.stderr
    (tmp_path / "uv.lock").write_text("version = 1\n")
    (tmp_path / ".venv").symlink_to(second_venv)
    mf = tmp_path / "mfpath"
    mf.mkdir()
    import metaflow

    (mf / "metaflow").symlink_to(Path(metaflow.__file__).parent)
    python = str(tmp_path / ".venv" / "bin" / "python")
    run = subprocess.run([python, "uv_flow.py", "--environment=uv", "run"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(mf)})
    assert run.returncode == 0, run.stderr
    proc = devd(tmp_path, "spin", "uv_flow.py", "--environment=uv", "start", "--no-daemon",
                "--json")
    data = json.loads(proc.stdout)
    assert data["ok"], data.get("error")
    assert f"start in {python} {VERSION}" in data["stdout"]
    assert values(data)["package"] == VERSION
    assert data["environment"]["name"] == "uv"
    assert any(f"the run was launched with {python}" in n and sys.executable in n
               for n in data["notices"])


def test_a_debug_spin_stops_at_a_breakpoint_in_the_worker(env_project: Path,
                                                         second_venv: Path) -> None:
    """Ctrl+Alt+D's path (devd/spin with debug): the worker's child waits for the DAP
    client, the breakpoint is hit in the second venv's interpreter."""
    from tests.dapclient import DapClient
    from tests.test_debug import DebugSpin

    devd(env_project, "daemon", "start", str(env_project))
    flow = str(env_project / "flow.py")
    line = next(i for i, text in enumerate((env_project / "flow.py").read_text().splitlines(),
                                           1) if "self.y = self.x + 1" in text)
    spin = DebugSpin(env_project, "train", flow="flow.py")
    ready = spin.ready.get(timeout=120)
    dap = DapClient(ready["host"], ready["port"])
    try:
        assert dap.attach({flow: [line]})[flow][0]["verified"]
        stopped = dap.wait_event("stopped")
        thread = stopped["body"]["threadId"]
        frame = dap.request("stackTrace", {"threadId": thread})["stackFrames"][0]
        assert frame["line"] == line and frame["name"] == "train"

        def evaluate(expression: str) -> str:
            return str(dap.request("evaluate", {"expression": expression,
                                                "frameId": frame["id"],
                                                "context": "repl"})["result"])

        assert evaluate("sys.executable") == repr(str(second_venv / "bin" / "python"))
        assert evaluate("self.package") == repr(VERSION)
        dap.request("continue", {"threadId": thread})
        dap.wait_event("terminated")
    finally:
        dap.close()
    result = spin.answer()
    assert_in_second_venv(result, second_venv)


def test_an_idle_worker_stops_and_the_next_spin_starts_one(env_project: Path,
                                                          second_venv: Path) -> None:
    devd(env_project, "daemon", "stop", str(env_project))
    os.environ["DEVD_WORKER_IDLE_S"] = "2"
    try:
        assert devd(env_project, "daemon", "start", str(env_project)).returncode == 0
    finally:
        del os.environ["DEVD_WORKER_IDLE_S"]
    first = json.loads(devd(env_project, "spin", "flow.py", "train", "--json").stdout)
    assert_in_second_venv(first, second_venv)
    worker = first["environment"]["worker"]
    status = json.loads(devd(env_project, "status", str(env_project), "--json").stdout)
    assert [w["pid"] for w in status["workers"]] == [worker]
    for _ in range(30):  # it stops itself after 2 s without a spin; the daemon reaps it
        time.sleep(0.5)
        status = json.loads(devd(env_project, "status", str(env_project), "--json").stdout)
        if not status["workers"]:
            break
    else:
        raise AssertionError(f"worker {worker} still listed after 15 s idle: {status}")
    assert not os.path.exists(f"/proc/{worker}")
    again = json.loads(devd(env_project, "spin", "flow.py", "train", "--json").stdout)
    assert_in_second_venv(again, second_venv)
    assert again["environment"]["worker"] != worker
    devd(env_project, "daemon", "stop", str(env_project))


PLAIN_FLOW = '''\
from metaflow import FlowSpec, step


class PlainFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        print("x is", self.x)


if __name__ == "__main__":
    PlainFlow()
'''


RECORD = """\
import os
import sys

from metaflow.metadata_provider import MetaDatum
from metaflow.metaflow_environment import MetaflowEnvironment
from metaflow.plugins.metadata_providers.local import LocalMetadataProvider


class Named:
    name = "PlainFlow"


run_id, step, field, value = sys.argv[1:]
task = next(t for t in os.listdir(f".metaflow/PlainFlow/{run_id}/{step}") if t.isdigit())
provider = LocalMetadataProvider(MetaflowEnvironment(Named()), Named(), None, None)
provider.register_metadata(run_id, step, task, [MetaDatum(
    field=field, value=value, type=field, tags=["attempt_id:0"])])
"""


def _record(root: Path, run_id: str, step: str, field: str, value: str) -> None:
    """Add a metadatum to a recorded task through Metaflow's own local metadata provider
    (in the project's directory), as a task records its `conda_env_prefix` and
    `python_version` when it runs."""
    subprocess.run([sys.executable, "-c", RECORD, run_id, step, field, value], cwd=root,
                   check=True, timeout=120)


def test_the_default_environment_is_what_the_parents_run_recorded(tmp_path: Path) -> None:
    """Without --environment: a recorded task that ran on another Python is named in a
    notice, and one that ran in a pypi environment (`conda_env_prefix`) makes the spin ask
    for that environment, here not created."""
    (tmp_path / "plain_flow.py").write_text(PLAIN_FLOW)
    run_id = run_flow(tmp_path, "plain_flow.py")
    assert run_id
    plain = json.loads(devd(tmp_path, "spin", "plain_flow.py", "end", "--no-daemon",
                            "--json").stdout)
    assert plain["ok"] and not plain["notices"] and not plain.get("environment")

    _record(tmp_path, run_id, "end", "python_version", "3.99.0")  # the recorded task
    noticed = json.loads(devd(tmp_path, "spin", "plain_flow.py", "end", "--no-daemon",
                              "--json").stdout)
    assert noticed["ok"]
    assert any(n.startswith("the parents' run ran on Python 3.99.0, devd on ")
               and "--environment=uv" in n for n in noticed["notices"]), noticed["notices"]

    _record(tmp_path, run_id, "end", "conda_env_prefix", "metaflow/linux-64/0123456789abcdef")
    refused = devd(tmp_path, "spin", "plain_flow.py", "end", "--no-daemon")
    assert refused.returncode == 2, refused.stderr
    assert "`python plain_flow.py --environment=pypi run` creates it" in refused.stderr
    given = devd(tmp_path, "spin", "plain_flow.py", "end", "--no-daemon",
                 "--environment=local", "--json")
    assert json.loads(given.stdout)["ok"]  # as given, it wins over the record


def test_a_wrong_top_level_option_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "plain_flow.py").write_text(PLAIN_FLOW)
    for extra, said in ((["--environment=pipy"], "invalid choice: pipy"),
                        (["--with", "nosuchdeco"], "Unknown step decorator *nosuchdeco*")):
        proc = devd(tmp_path, "spin", "plain_flow.py", "end", "--no-daemon", *extra)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], proc.stderr
        assert lines[0].startswith("devd: Metaflow could not say where step 'end' runs with ")
