"""Debugging a spun step: a real daemon's debug spin driven by a DAP client (as VS Code,
PyCharm or nvim-dap would), and ``devd spin --pdb`` driven through a pseudo-terminal."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pexpect
import pytest

from devd.cli.client import DaemonClient
from devd.common.project import daemon_paths
from tests.conftest import FLOWS, daemon_environment, run_flow
from tests.dapclient import DapClient

LINEAR = (FLOWS / "linear_flow.py").read_text().splitlines()
BREAK_LINE = LINEAR.index("        self.y = sum(self.x) * self.alpha") + 1  # in `double`


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def debug_project() -> Any:
    """A project of its own (linear and failing flows, run once) and its daemon."""
    root = Path(tempfile.mkdtemp(prefix="dbg"))
    for name in ("linear_flow.py", "fail_flow.py"):
        shutil.copy(FLOWS / name, root / name)
    previous = os.getcwd()
    os.chdir(root)
    with daemon_environment("dbr"):
        run_flow(root, "linear_flow.py")
        run_flow(root, "fail_flow.py", check=False)
        started = cli(root, "daemon", "start", str(root))
        assert started.returncode == 0, started.stderr
        try:
            yield root
        finally:
            cli(root, "daemon", "stop", str(root))
            os.chdir(previous)
            shutil.rmtree(root, ignore_errors=True)


class DebugSpin:
    """A ``devd/spin`` with ``debug: true`` in flight on its own connection."""

    def __init__(self, root: Path, step: str, flow: str = "linear_flow.py",
                 **extra: Any) -> None:
        self.ready: queue.Queue[dict[str, Any]] = queue.Queue()
        self.result: queue.Queue[Any] = queue.Queue()
        self.client = DaemonClient(daemon_paths(str(root)))
        params = {"uri": (root / flow).as_uri(), "step": step, "debug": True, **extra}

        def notified(method: str, payload: Any) -> None:
            if method == "devd/debugReady":
                self.ready.put(payload)

        def work() -> None:
            try:
                self.result.put(self.client.request("devd/spin", params, notified))
            except Exception as exc:  # the test reads it
                self.result.put(exc)
            finally:
                self.client.close()

        threading.Thread(target=work, daemon=True).start()

    def answer(self, timeout: float = 60) -> dict[str, Any]:
        value = self.result.get(timeout=timeout)
        if isinstance(value, Exception):
            raise value
        return value


def request(root: Path, method: str, params: dict[str, Any]) -> Any:
    with DaemonClient(daemon_paths(str(root))) as client:
        return client.request(method, params)


def mapped_files(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as fh:
        return fh.read()


def test_breakpoint_in_a_step_sees_warm_parents(debug_project: Path) -> None:
    root = debug_project
    flow = str(root / "linear_flow.py")
    spin = DebugSpin(root, "double")
    ready = spin.ready.get(timeout=60)
    assert ready["host"] == "127.0.0.1" and ready["step"] == "double"
    assert ready["uri"] == (root / "linear_flow.py").as_uri()
    dap = DapClient(ready["host"], ready["port"])
    try:
        verified = dap.attach({flow: [BREAK_LINE]})
        assert verified[flow][0]["verified"], verified
        stopped = dap.wait_event("stopped")
        assert stopped["body"]["reason"] == "breakpoint"
        thread = stopped["body"]["threadId"]
        frame = dap.request("stackTrace", {"threadId": thread})["stackFrames"][0]
        assert frame["line"] == BREAK_LINE
        assert os.path.samefile(frame["source"]["path"], flow)
        assert frame["name"] == "double"

        def evaluate(expression: str) -> str:
            return dap.request("evaluate", {"expression": expression, "frameId": frame["id"],
                                            "context": "repl"})["result"]

        assert evaluate("self.x") == "[1, 2, 3]"  # the warm parent's value
        assert evaluate("self.label") == "'lin'"
        # The Variables view: `self` in Locals, every parent artifact under it, also those
        # the step has not read yet (Metaflow loads them on first access).
        scope = dap.request("scopes", {"frameId": frame["id"]})["scopes"][0]
        local = {v["name"]: v for v in
                 dap.request("variables", {"variablesReference":
                                           scope["variablesReference"]})["variables"]}
        members = {v["name"]: v["value"] for v in
                   dap.request("variables", {"variablesReference":
                                             local["self"]["variablesReference"]})["variables"]}
        assert members.get("label") == "'lin'", sorted(members)
        assert members.get("x") == "[1, 2, 3]", sorted(members)
        # The step's process runs debugpy; the warm daemon never loads it.
        debuggee = next(m for m in dap.seen if m.get("event") == "process")
        child = debuggee["body"]["systemProcessId"]
        daemon_pid = request(root, "devd/status", {})["pid"]
        assert child != daemon_pid
        assert "pydevd" in mapped_files(child)
        # A debugger may change what the step sees: that stays in the step's process.
        evaluate("self.x.append(100)")
        dap.request("continue", {"threadId": thread})
        dap.wait_event("terminated")
    finally:
        dap.close()
    result = spin.answer()
    assert result["ok"], result.get("error")
    assert {a["name"]: a["summary"] for a in result["artifacts"]}["y"] == "212"
    assert "y is 212" in result["stdout"]
    assert "pydevd" not in mapped_files(daemon_pid)
    # The warm parents are as recorded: an ordinary spin after the session reads them.
    again = request(root, "devd/spin", {"uri": (root / "linear_flow.py").as_uri(),
                                        "step": "double"})
    assert again["ok"] and {a["name"]: a["summary"] for a in again["artifacts"]}["y"] == "12"
    assert request(root, "devd/status", {})["running"] == []


def test_breakpoint_in_a_module_the_flow_imports(debug_project: Path) -> None:
    """Your own code next to the flow, re-imported by the step's child, stops too."""
    root = debug_project
    (root / "dbg_helper.py").write_text("def total(values):\n    result = sum(values)\n"
                                        "    return result\n")
    shown = '        print("y is", self.y)\n'
    (root / "helper_flow.py").write_text(
        "import dbg_helper\n" + (root / "linear_flow.py").read_text().replace(
            shown, "        self.total = dbg_helper.total(self.x)\n" + shown))
    try:
        spin = DebugSpin(root, "double", flow="helper_flow.py")
        ready = spin.ready.get(timeout=60)
        dap = DapClient(ready["host"], ready["port"])
        try:
            dap.attach({str(root / "dbg_helper.py"): [3]})
            stopped = dap.wait_event("stopped")
            frames = dap.request("stackTrace", {"threadId": stopped["body"]["threadId"]})
            top, caller = frames["stackFrames"][:2]
            assert (top["name"], top["line"]) == ("total", 3)
            assert os.path.samefile(top["source"]["path"], root / "dbg_helper.py")
            assert caller["name"] == "double"
            assert dap.request("evaluate", {"expression": "result", "frameId": top["id"],
                                            "context": "watch"})["result"] == "6"
            dap.request("continue", {"threadId": stopped["body"]["threadId"]})
        finally:
            dap.close()
        result = spin.answer()
        assert result["ok"] and {a["name"]: a["summary"]
                                 for a in result["artifacts"]}["total"] == "6"
    finally:
        (root / "helper_flow.py").unlink()
        (root / "dbg_helper.py").unlink()


FAIL = (FLOWS / "fail_flow.py").read_text().splitlines()
RAISE_LINE = next(i for i, line in enumerate(FAIL, 1) if "raise ValueError" in line)


def test_an_exception_in_the_step_stops_with_the_default_filters(debug_project: Path) -> None:
    """devd catches the step's exception; the debugger still stops there as at an uncaught
    one, with the exception filters a client ticks by default (VS Code: "Uncaught
    Exceptions"), and the spin fails as usual once continued."""
    root = debug_project
    spin = DebugSpin(root, "train", flow="fail_flow.py")
    ready = spin.ready.get(timeout=60)
    dap = DapClient(ready["host"], ready["port"])
    try:
        dap.attach({})  # no breakpoints, default exception filters
        stopped = dap.wait_event("stopped")
        assert stopped["body"]["reason"] == "exception", stopped
        thread = stopped["body"]["threadId"]
        frame = dap.request("stackTrace", {"threadId": thread})["stackFrames"][0]
        assert (frame["name"], frame["line"]) == ("train", RAISE_LINE)
        info = dap.request("exceptionInfo", {"threadId": thread})
        assert "kk=5 is below 10" in info["description"], info
        assert dap.request("evaluate", {"expression": "self.threshold", "frameId": frame["id"],
                                        "context": "repl"})["result"] == "10"
        dap.request("continue", {"threadId": thread})
        dap.wait_event("terminated")
    finally:
        dap.close()
    result = spin.answer()
    assert not result["ok"]
    assert (result["error"]["type"], result["error"]["line"]) == ("ValueError", RAISE_LINE)


def test_no_exception_filter_no_stop(debug_project: Path) -> None:
    """The client's filters decide: with none ticked the failing step runs through."""
    root = debug_project
    spin = DebugSpin(root, "train", flow="fail_flow.py")
    ready = spin.ready.get(timeout=60)
    dap = DapClient(ready["host"], ready["port"])
    try:
        dap.attach({}, exception_filters=[])
        dap.wait_event("terminated")
    finally:
        dap.close()
    assert not spin.answer()["ok"]
    assert not [m for m in dap.seen if m.get("event") == "stopped"]


def test_an_exception_stops_once_with_user_uncaught_ticked_too(debug_project: Path) -> None:
    """debugpy stops where the exception leaves the user's code ("User Uncaught
    Exceptions"): devd's own stop for the same exception does not follow it."""
    root = debug_project
    spin = DebugSpin(root, "train", flow="fail_flow.py")
    ready = spin.ready.get(timeout=60)
    dap = DapClient(ready["host"], ready["port"])
    try:
        dap.attach({}, exception_filters=["uncaught", "userUnhandled"])
        stopped = dap.wait_event("stopped")
        dap.request("continue", {"threadId": stopped["body"]["threadId"]})
        dap.wait_event("terminated")
    finally:
        dap.close()
    assert not spin.answer()["ok"]
    assert len([m for m in dap.seen if m.get("event") == "stopped"]) == 1


def test_time_stopped_at_a_breakpoint_is_not_the_steps_time(debug_project: Path) -> None:
    """durationMs leaves out the time the step was stopped in the debugger; timingsMs
    says how long that was (child.paused)."""
    root = debug_project
    spin = DebugSpin(root, "double")
    ready = spin.ready.get(timeout=60)
    dap = DapClient(ready["host"], ready["port"])
    pause = 4.0
    try:
        dap.attach({str(root / "linear_flow.py"): [BREAK_LINE]})
        stopped = dap.wait_event("stopped")
        threading.Event().wait(pause)
        dap.request("continue", {"threadId": stopped["body"]["threadId"]})
        dap.wait_event("terminated")
    finally:
        dap.close()
    result = spin.answer()
    assert result["ok"], result.get("error")
    paused_ms = result["timingsMs"]["child.paused"]
    assert paused_ms >= pause * 1000, result["timingsMs"]
    assert result["timingsMs"]["child.step"] >= paused_ms  # the step's phase holds the stop
    # What is left is the spin without the stop: it cannot hold a stop of `pause` seconds.
    assert result["durationMs"] < pause * 1000, result["durationMs"]


def prepared_child(root: Path, step: str, not_pid: int | None = None,
                   flow: str = "linear_flow.py") -> int:
    """The pid of the child the daemon keeps prepared for ``step`` of ``flow`` (a new one;
    another flow's, helper_flow.py's of an earlier test, goes when its file does)."""
    for _ in range(300):
        for entry in request(root, "devd/status", {})["prepared"]:
            if entry["step"] == step and entry["pid"] != not_pid \
                    and Path(entry["flow"]).name == flow:
                return int(entry["pid"])
        threading.Event().wait(0.1)
    raise AssertionError(f"no child prepared for {step}")


def prepared_with_debugpy(root: Path, step: str, not_pid: int | None = None) -> int:
    """The pid of a child prepared for ``step`` (not ``not_pid``) once it has debugpy
    imported (in the background, after its fork). The daemon replaces a prepared child
    whose warm parents changed since its fork (what earlier spins read loads in the
    background): then its successor is the one waited for."""
    for _ in range(300):
        pid = prepared_child(root, step, not_pid=not_pid)
        try:
            if "pydevd" in mapped_files(pid):
                return pid
        except FileNotFoundError:  # replaced meanwhile
            continue
        threading.Event().wait(0.1)
    raise AssertionError(f"no child prepared for {step} imported debugpy")


def debug_once(root: Path) -> int:
    """A debug spin of `double`, attached and run through; the pid of its process."""
    spin = DebugSpin(root, "double")
    ready = spin.ready.get(timeout=60)
    dap = DapClient(ready["host"], ready["port"])
    try:
        dap.attach({})
        dap.wait_event("terminated")
    finally:
        dap.close()
    assert spin.answer()["ok"]
    return int(next(m for m in dap.seen if m.get("event") == "process")
               ["body"]["systemProcessId"])


def test_after_a_debug_spin_the_prepared_child_has_debugpy_ready(debug_project: Path) -> None:
    """The child prepared after a debug spin imports debugpy while it waits (not the warm
    process), and the next debug spin runs in it; an ordinary spin may use it too, and
    once the flow was debugged, the child prepared after an ordinary spin has it too."""
    root = debug_project
    daemon_pid = request(root, "devd/status", {})["pid"]
    ran_in = debug_once(root)
    served = []
    # A prepared child is refused when the warm parents changed since its fork (the
    # daemon loads in the background what earlier spins read): a few tries at most.
    for _ in range(3):
        waiting = prepared_with_debugpy(root, "double", not_pid=ran_in)
        assert "pydevd" not in mapped_files(daemon_pid)
        ran_in = debug_once(root)
        served.append(ran_in == waiting)
        if ran_in == waiting:  # the prepared child served the debug spin
            break
    assert served[-1], served
    ordinary = prepared_child(root, "double", not_pid=waiting)
    spun = request(root, "devd/spin", {"uri": (root / "linear_flow.py").as_uri(),
                                       "step": "double"})
    assert spun["ok"] and {a["name"]: a["summary"] for a in spun["artifacts"]}["y"] == "12"
    # After an ordinary spin too, once the flow was debugged: the next child has debugpy.
    prepared_with_debugpy(root, "double", not_pid=ordinary)
    assert "pydevd" not in mapped_files(daemon_pid)


def test_nobody_attaches_times_out_clearly(debug_project: Path) -> None:
    root = debug_project
    spin = DebugSpin(root, "double", debugTimeout=1)
    ready = spin.ready.get(timeout=60)
    result = spin.answer()
    assert not result["ok"]
    assert result["error"]["type"] == "devd.DebugTimeout"
    assert result["error"]["message"] == (
        f"no debugger attached to 127.0.0.1:{ready['port']} within 1 s; attach sooner, or "
        "give a longer debug timeout")
    status = request(root, "devd/status", {})
    assert status["running"] == []
    healthy = request(root, "devd/spin", {"uri": (root / "linear_flow.py").as_uri(),
                                          "step": "double"})
    assert healthy["ok"]


def test_debug_spin_is_cancelled_or_superseded_like_any_spin(debug_project: Path) -> None:
    root = debug_project
    spin = DebugSpin(root, "double")
    spin.ready.get(timeout=60)  # waiting for a client
    assert request(root, "devd/cancel", {"target": "double"})["cancelled"]
    result = spin.answer()
    assert result["error"]["type"] == "devd.Cancelled"
    assert result["error"]["message"] == "spin of 'double' cancelled"
    # Stopped at a breakpoint, then a newer spin of the same step: the debug spin gives way.
    spin = DebugSpin(root, "double")
    ready = spin.ready.get(timeout=60)
    dap = DapClient(ready["host"], ready["port"])
    try:
        dap.attach({str(root / "linear_flow.py"): [BREAK_LINE]})
        dap.wait_event("stopped")
        newer = request(root, "devd/spin", {"uri": (root / "linear_flow.py").as_uri(),
                                            "step": "double"})
    finally:
        dap.close()
    assert newer["ok"]
    result = spin.answer()
    assert result["error"]["message"] == \
        "spin of 'double' superseded by a newer spin of the same step"


def test_bad_debug_timeout_is_one_line(debug_project: Path) -> None:
    answer = request(debug_project, "devd/spin", {
        "uri": (debug_project / "linear_flow.py").as_uri(), "step": "double",
        "debug": True, "debugTimeout": -1})
    assert answer["error"]["type"] == "devd.BadRequest"
    assert answer["error"]["message"] == \
        "the debug timeout must be a positive number of seconds, not -1"


def test_cli_debug_prints_where_to_attach(debug_project: Path) -> None:
    root = debug_project
    proc = subprocess.Popen([sys.executable, "-m", "devd.cli", "spin", "linear_flow.py",
                             "double", "--debug"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith("devd: waiting for a debugger on 127.0.0.1:"), line
    port = int(line.rsplit(":", 1)[1])
    dap = DapClient("127.0.0.1", port)
    try:
        dap.attach({})
        dap.wait_event("terminated")
    finally:
        dap.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "LinearFlow/double: ok" in out


def test_pdb_post_mortem_in_the_terminal(debug_project: Path) -> None:
    root = debug_project
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = pexpect.spawn(sys.executable, ["-m", "devd.cli", "spin", "fail_flow.py", "train",
                                           "--pdb"], cwd=str(root), env=env,
                          encoding="utf-8", timeout=60)
    try:
        child.expect(r"ValueError: kk=5 is below 10")
        child.expect(r"-> raise ValueError")
        child.expect(r"\(Pdb\) ")
        child.sendline("p self.threshold")
        child.expect(r"\r\n10\r\n")
        child.expect(r"\(Pdb\) ")
        child.sendline("q")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 1  # the step failed


def test_pdb_breakpoint_in_the_step(debug_project: Path) -> None:
    root = debug_project
    shown = '        print("y is", self.y)\n'
    source = (root / "linear_flow.py").read_text().replace(
        shown, "        breakpoint()\n" + shown)
    (root / "bp_flow.py").write_text(source)
    child = pexpect.spawn(sys.executable, ["-m", "devd.cli", "spin", "bp_flow.py", "double",
                                           "--pdb"], cwd=str(root), encoding="utf-8",
                          timeout=60)
    try:
        child.expect(r"\(Pdb\) ")
        child.sendline("p self.y, self.label")
        child.expect(r"\(12, 'lin'\)")
        child.sendline("c")
        child.expect(r"LinearFlow/double: ok")
        child.expect(pexpect.EOF)
    finally:
        child.close()
        (root / "bp_flow.py").unlink()
    assert child.exitstatus == 0


def test_session_debug_spin_says_where_and_the_warm_process_stays_clean(
        debug_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """From Python: the port is printed, and this process (the warm one) never loads
    debugpy, while the step's child does."""
    from devd.core.session import Session

    results: queue.Queue[Any] = queue.Queue()
    with Session(debug_project / "linear_flow.py", prepare=False) as session:
        threading.Thread(target=lambda: results.put(session.spin("double", debug=True)),
                         daemon=True).start()
        port = None
        for _ in range(600):
            err = capsys.readouterr().err
            if "waiting for a debugger on 127.0.0.1:" in err:
                port = int(err.split("waiting for a debugger on 127.0.0.1:")[1].split()[0])
                break
            threading.Event().wait(0.1)
        assert port, "no 'waiting for a debugger' line"
        dap = DapClient("127.0.0.1", port)
        try:
            dap.attach({str(debug_project / "linear_flow.py"): [BREAK_LINE]})
            stopped = dap.wait_event("stopped")
            child = next(m for m in dap.seen if m.get("event") == "process")
            assert "pydevd" in mapped_files(child["body"]["systemProcessId"])
            dap.request("continue", {"threadId": stopped["body"]["threadId"]})
            dap.wait_event("terminated")
        finally:
            dap.close()
        result = results.get(timeout=60)
    assert result.ok and result.artifacts["y"] == 12
    assert not any(name == "debugpy" or name.startswith(("debugpy.", "pydevd"))
                   for name in sys.modules)
    assert "pydevd" not in mapped_files(os.getpid())
