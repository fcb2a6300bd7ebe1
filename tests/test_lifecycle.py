"""Processes around a spin, for real: a real daemon, real CLI subprocesses, real signals.

- Ctrl-C on `devd spin` cancels that spin in the daemon; a closed connection cancels its
  work; steps that never return cannot use up the daemon's threads.
- What a step leaves running (a subprocess, a grandchild holding its stdout) is killed
  when the step ends, and does not delay the result.
- A daemon killed with SIGKILL takes its step children (prepared ones too) with it; the
  CLI waiting on it says so in one line, and the next `devd spin` starts a fresh daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devd.common.project import daemon_paths
from tests.conftest import daemon_environment, run_flow

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc and relies on Linux process groups")

BUSY_STEPS = 9  # one more than the daemon's former fixed pool of 8 threads

FLOW = '''
import os
import subprocess
import sys

from metaflow import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))


def busy_if_asked(name):
    """Loop forever (100% CPU) when busy.on exists; the real run goes straight through."""
    if os.path.exists(os.path.join(HERE, "busy.on")):
        with open(os.path.join(HERE, f"{name}.pid"), "w") as fh:
            fh.write(str(os.getpid()))
        while True:
            pass


class LifeFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.leftover)

    @step
    def leftover(self):
        if os.path.exists(os.path.join(HERE, "leftover.on")):
            # a subprocess left running, holding our stdout; a grandchild of it, too
            sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            pidfile = os.path.join(HERE, "grandchild.pid")
            if os.path.exists(pidfile):
                os.unlink(pidfile)
            shell = subprocess.Popen(["sh", "-c", f"sleep 300 & echo $! > {pidfile}.new; "
                                      f"mv {pidfile}.new {pidfile}; wait"])
            while not os.path.exists(pidfile):
                pass
            with open(os.path.join(HERE, "leftover.pids"), "w") as fh:
                fh.write(f"{sleeper.pid} {shell.pid}")
            print("left two processes running")
        self.y = 2
        self.next(self.busy0)
''' + "".join(f'''
    @step
    def busy{i}(self):
        busy_if_asked("busy{i}")
        self.next(self.{"busy" + str(i + 1) if i + 1 < BUSY_STEPS else "end"})
''' for i in range(BUSY_STEPS)) + '''
    @step
    def end(self):
        pass


if __name__ == "__main__":
    LifeFlow()
'''


@pytest.fixture(scope="module")
def life_project() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="dvl"))
    (root / "life_flow.py").write_text(FLOW)
    with daemon_environment("dvlr"):
        run_flow(root, "life_flow.py")
        yield root
        (root / "busy.on").unlink(missing_ok=True)
        cli(root, "daemon", "stop", str(root))
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def daemon(life_project: Path) -> Iterator[int]:
    """A running daemon for the project (a fresh one if the last test killed it); its pid."""
    proc = cli(life_project, "daemon", "start", str(life_project))
    assert proc.returncode == 0, proc.stderr
    yield daemon_pid(life_project)
    for marker in ("busy.on", "leftover.on"):
        (life_project / marker).unlink(missing_ok=True)


def cli(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def cli_background(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "devd.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def daemon_pid(root: Path) -> int:
    return int(daemon_paths(str(root)).read_info()["pid"])


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_for(predicate: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


def step_pid(root: Path, step: str, seconds: float = 60) -> int:
    """The pid of a busy step's process, once it is looping."""
    path = root / f"{step}.pid"
    wait_for(lambda: path.exists() and path.read_text().strip(), seconds,
             f"{step} to start looping")
    return int(path.read_text())


def start_busy(root: Path) -> None:
    for i in range(BUSY_STEPS):
        (root / f"busy{i}.pid").unlink(missing_ok=True)
    (root / "busy.on").write_text("")


def raw_spin(root: Path, step: str) -> socket.socket:
    """A bare JSON-RPC client asking for a spin, and not reading the answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(daemon_paths(str(root)).socket)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "devd/spin",
                       "params": {"uri": (root / "life_flow.py").as_uri(),
                                  "step": step}}).encode()
    sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return sock


def test_ctrl_c_on_a_cli_spin_cancels_the_step_in_the_daemon(life_project: Path,
                                                              daemon: int) -> None:
    start_busy(life_project)
    spin = cli_background(life_project, "spin", "life_flow.py", "busy0")
    pid = step_pid(life_project, "busy0")
    assert alive(pid)
    spin.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
    _, err = spin.communicate(timeout=30)
    assert spin.returncode == 130, err
    assert "Traceback" not in err
    wait_for(lambda: not alive(pid), 10, f"the cancelled step (pid {pid}) to stop")
    wait_for(lambda: json.loads(cli(life_project, "status", "--json").stdout)["running"]
             == [], 10, "the daemon to list no running work")


def test_abandoned_spins_cannot_use_up_the_daemon(life_project: Path, daemon: int) -> None:
    start_busy(life_project)
    clients = [raw_spin(life_project, f"busy{i}") for i in range(BUSY_STEPS)]
    try:
        pids = [step_pid(life_project, f"busy{i}") for i in range(BUSY_STEPS)]
        (life_project / "busy.on").unlink()
        # every step above is stuck for good; the daemon still answers a new spin
        proc = cli(life_project, "spin", "life_flow.py", "start", timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "start: ok" in proc.stdout
    finally:
        for sock in clients:
            sock.close()
    # their connections closed: nobody waits for those spins, so they are cancelled
    for pid in pids:
        wait_for(lambda pid=pid: not alive(pid), 10, f"abandoned step pid {pid} to stop")


def test_leftover_processes_are_killed_and_do_not_delay_the_result(
        life_project: Path, daemon: int) -> None:
    for name in ("leftover.pids", "grandchild.pid"):
        (life_project / name).unlink(missing_ok=True)
    assert cli(life_project, "spin", "life_flow.py", "leftover").returncode == 0  # warm
    (life_project / "leftover.on").write_text("")
    for _ in range(2):  # a fresh child, then a prepared one
        started = time.monotonic()
        proc = cli(life_project, "spin", "life_flow.py", "leftover")
        elapsed = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr
        assert "left two processes running" in proc.stdout
        assert elapsed < 4, f"the spin took {elapsed:.1f} s: its leftovers delayed it"
        pids = [int(p) for p in (life_project / "leftover.pids").read_text().split()]
        pids.append(int((life_project / "grandchild.pid").read_text()))
        for pid in pids:
            wait_for(lambda pid=pid: not alive(pid), 5, f"leftover pid {pid} to be killed")


def test_a_killed_daemon_takes_its_children_and_the_next_spin_starts_a_fresh_one(
        life_project: Path, daemon: int) -> None:
    # a prepared child, forked on a thread that has ended since
    for _ in range(2):
        assert cli(life_project, "spin", "life_flow.py", "start").returncode == 0
    time.sleep(0.5)
    status = json.loads(cli(life_project, "status", "--json").stdout)
    prepared = [p["pid"] for p in status["prepared"]]
    assert prepared and all(alive(pid) for pid in prepared)
    start_busy(life_project)
    spin = cli_background(life_project, "spin", "life_flow.py", "busy0")
    pid = step_pid(life_project, "busy0")
    os.kill(daemon, signal.SIGKILL)
    _, err = spin.communicate(timeout=30)
    assert spin.returncode == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("devd: "), err
    assert "closed the connection" in err
    for child in (pid, *prepared):
        wait_for(lambda child=child: not alive(child), 10,
                 f"step child {child} to die with its daemon")
    # and the daemon itself gone: a killed process frees its memory before it closes its
    # files, so for a moment (longer on a loaded machine) its socket still takes connections
    # it will never answer; the next spin is meant to find it dead
    wait_for(lambda: not alive(daemon), 10, f"the killed daemon {daemon} to be gone")
    (life_project / "busy.on").unlink()
    proc = cli(life_project, "spin", "life_flow.py", "start")
    assert proc.returncode == 0, proc.stderr
    assert "starting a fresh one" in proc.stderr
    fresh = daemon_pid(life_project)
    assert fresh != daemon and alive(fresh)
    status = json.loads(cli(life_project, "status", "--json").stdout)
    assert status["pid"] == fresh and status["lastSpins"]  # the spin ran in the daemon


def test_ctrl_c_on_a_cli_run_cancels_the_whole_run_in_the_daemon(life_project: Path,
                                                                 daemon: int) -> None:
    start_busy(life_project)
    run = cli_background(life_project, "run", "life_flow.py")
    pid = step_pid(life_project, "busy0", seconds=120)  # a task of Metaflow's own runtime
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    wait_for(lambda: not alive(pid), 10, f"the run's task (pid {pid}) to stop")
    wait_for(lambda: json.loads(cli(life_project, "status", "--json").stdout)["running"]
             == [], 10, "the daemon to list no running work")
