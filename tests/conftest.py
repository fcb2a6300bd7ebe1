"""Shared set-up: real Metaflow runs of the test flows in one temporary project directory.

Metaflow reads its defaults when first imported, and refuses user ``root``: the
environment is set here, before anything imports it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["USER"] = "devd-test"
os.environ["METAFLOW_DEFAULT_DATASTORE"] = "local"
os.environ["METAFLOW_DEFAULT_METADATA"] = "local"
os.environ.pop("METAFLOW_DATASTORE_SYSROOT_LOCAL", None)

FLOWS = Path(__file__).parent / "flows"

# The ``other_user`` fixture (a throwaway second Unix user) for every test module.
pytest_plugins = ["tests.otheruser"]


@contextlib.contextmanager
def daemon_environment(prefix: str) -> Iterator[str]:
    """A private runtime dir (named ``prefix``...) and a long idle timeout for the daemons a
    test module starts; the environment is put back afterwards."""
    previous = {k: os.environ.get(k) for k in ("DEVD_RUNTIME_DIR", "DEVD_IDLE_TIMEOUT")}
    runtime = tempfile.mkdtemp(prefix=prefix)
    os.environ["DEVD_RUNTIME_DIR"] = runtime
    os.environ["DEVD_IDLE_TIMEOUT"] = "300"
    try:
        yield runtime
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_flow(project: Path, flow: str, *args: str, check: bool = True) -> str | None:
    """A real ``python FLOW run``; returns the run id."""
    id_file = project / f".runid-{flow}"
    if id_file.exists():
        id_file.unlink()
    proc = subprocess.run(
        [sys.executable, flow, *args[:0], "run", *args, "--run-id-file", str(id_file)],
        cwd=project, capture_output=True, text=True, timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{flow} run failed:\n{proc.stdout}\n{proc.stderr}")
    return id_file.read_text().strip() if id_file.exists() else None


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory holding the test flows, each run once for real."""
    root = tmp_path_factory.mktemp("project")
    for item in FLOWS.iterdir():
        if item.is_file():
            shutil.copy(item, root / item.name)
    previous = os.getcwd()
    os.chdir(root)
    runs = {}
    for flow in ("linear_flow.py", "branch_flow.py", "foreach_flow.py", "nested_flow.py",
                 "config_flow.py", "chaos_flow.py", "slow_flow.py", "card_flow.py"):
        runs[flow] = run_flow(root, flow)
    runs["fail_flow.py"] = run_flow(root, "fail_flow.py", check=False)
    (root / "runs.txt").write_text(repr(runs))
    yield root
    os.chdir(previous)


@pytest.fixture
def in_project(project: Path) -> Path:
    """The shared project as this process's Metaflow project: a module before may have made
    a Session elsewhere, and Metaflow keeps the first ``.metaflow`` it found."""
    from devd.core.metaflowenv import bind_metaflow_root

    os.chdir(project)
    bind_metaflow_root()
    return project
