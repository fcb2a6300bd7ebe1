"""One daemon per interpreter (issue 19, item 2): a client running another Python than the
project's daemon never joins it; the daemon is replaced by one of the client's interpreter,
and the log says so. The CLI, `devd serve --stdio` (the editor's) and `devd mcp` alike.

Two real interpreters: this venv's, and a second venv whose site-packages point at this
one's (so devd and Metaflow import) while its ``sys.prefix`` is its own.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devd.common.project import daemon_paths
from tests.conftest import daemon_environment, run_flow

FLOW = '''
import sys

from metaflow import FlowSpec, step


class WhichFlow(FlowSpec):
    @step
    def start(self):
        print("prefix=" + sys.prefix)
        self.prefix = sys.prefix
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WhichFlow()
'''


@pytest.fixture(scope="module")
def other_python() -> Iterator[str]:
    """A second interpreter: a venv of its own that imports this venv's packages."""
    home = Path(tempfile.mkdtemp(prefix="dvi-venv"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True,
                   timeout=120)
    python = home / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    dirs = ", ".join(repr(d) for d in site.getsitepackages())
    Path(own, "devd-test.pth").write_text(f"import site; list(map(site.addsitedir, ({dirs},)))\n")
    yield str(python)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def which_project() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="dvi"))
    (root / "which_flow.py").write_text(FLOW)
    with daemon_environment("dvir"):
        run_flow(root, "which_flow.py")
        yield root
        subprocess.run([sys.executable, "-m", "devd.cli", "daemon", "stop", str(root)],
                       capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


def devd(python: str, root: Path, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-m", "devd.cli", *args], cwd=root, capture_output=True,
                          text=True, timeout=180, **kw)


def daemon_python(root: Path) -> str | None:
    python = daemon_paths(str(root)).read_info().get("python")
    return python if isinstance(python, str) else None


def prefix_of(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_a_cli_of_another_interpreter_replaces_the_daemon_and_says_so(
        which_project: Path, other_python: str) -> None:
    started = devd(sys.executable, which_project, "daemon", "start", str(which_project))
    assert started.returncode == 0, started.stderr
    first = daemon_paths(str(which_project)).read_pid()
    assert daemon_python(which_project) == sys.executable

    spun = devd(other_python, which_project, "spin", "which_flow.py", "start", "--json")
    assert spun.returncode == 0, spun.stderr
    assert f"prefix={prefix_of(other_python)}\n" in json.loads(spun.stdout)["stdout"]
    assert "replacing it" in spun.stderr and other_python in spun.stderr, spun.stderr
    assert daemon_python(which_project) == other_python
    assert daemon_paths(str(which_project)).read_pid() != first
    log = Path(daemon_paths(str(which_project)).log).read_text()
    assert f"runs {sys.executable}; replacing it with a daemon of {other_python}" in log

    # the same interpreter again joins the daemon it has
    second = daemon_paths(str(which_project)).read_pid()
    again = devd(other_python, which_project, "spin", "which_flow.py", "start", "--json")
    assert again.returncode == 0 and "replacing" not in again.stderr, again.stderr
    assert daemon_paths(str(which_project)).read_pid() == second


def test_devd_mcp_and_the_editors_serve_follow_the_same_rule(
        which_project: Path, other_python: str) -> None:
    from devd.cli.mcp import Tools

    started = devd(other_python, which_project, "daemon", "start", str(which_project))
    assert started.returncode == 0, started.stderr
    assert daemon_python(which_project) == other_python

    result = Tools(str(which_project)).spin("which_flow.py", "start")  # this interpreter
    assert result["ok"] and f"prefix={sys.prefix}\n" in result["stdout"]
    assert daemon_python(which_project) == sys.executable

    # `devd serve --stdio` (what the editor starts with devd.pythonPath) replaces it back
    serve = subprocess.Popen([other_python, "-m", "devd.cli", "serve", "--stdio", "--root",
                              str(which_project)], cwd=which_project, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while daemon_python(which_project) != other_python and time.monotonic() < deadline:
            time.sleep(0.1)
        assert daemon_python(which_project) == other_python
    finally:
        _, err = serve.communicate(timeout=30)  # closes its stdin: the editor went away
    assert "replacing it" in err, err


def test_a_client_of_the_same_interpreter_never_restarts_the_daemon(which_project: Path) -> None:
    started = devd(sys.executable, which_project, "daemon", "start", str(which_project))
    assert started.returncode == 0
    pid = daemon_paths(str(which_project)).read_pid()
    status = devd(sys.executable, which_project, "daemon", "start", str(which_project))
    assert "already running" in status.stdout and daemon_paths(str(which_project)).read_pid() == pid
    assert os.path.exists(daemon_paths(str(which_project)).socket)


def test_status_from_another_interpreter_names_the_daemons_and_leaves_it(
        which_project: Path, other_python: str) -> None:
    started = devd(sys.executable, which_project, "daemon", "start", str(which_project))
    assert started.returncode == 0, started.stderr
    pid = daemon_paths(str(which_project)).read_pid()
    status = devd(other_python, which_project, "status", str(which_project))
    assert status.returncode == 0, status.stderr
    assert f"runs {sys.executable}, not {other_python}" in status.stdout, status.stdout
    assert daemon_paths(str(which_project)).read_pid() == pid  # looked at, not replaced
