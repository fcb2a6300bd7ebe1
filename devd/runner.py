"""Real Metaflow runs and resumes: ``python FLOW run|resume ...`` in a subprocess.

devd does not reimplement these: they are Metaflow's own, so a flow that runs here
deploys unchanged. devd only streams their output and reports the new run id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .errors import DevdError

# Metaflow options that belong before the subcommand (``python flow.py OPTS run``), with arity.
TOP_LEVEL_OPTIONS = {
    "--config": 2, "--config-value": 2, "--with": 1, "--datastore": 1, "--datastore-root": 1,
    "--metadata": 1, "--environment": 1, "--event-logger": 1, "--monitor": 1,
    "--package-suffixes": 1, "--quiet": 0, "--not-quiet": 0, "--pylint": 0, "--no-pylint": 0,
}


@dataclass
class RunOutcome:
    ok: bool
    run_id: str | None
    returncode: int
    command: list[str]


def split_options(args: list[str]) -> tuple[list[str], list[str]]:
    """Separate Metaflow's top-level options from the ``run``/``resume`` ones."""
    top: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in TOP_LEVEL_OPTIONS:
            arity = 0 if "=" in arg else TOP_LEVEL_OPTIONS[name]
            top.extend(args[i : i + 1 + arity])
            i += 1 + arity
        else:
            rest.append(arg)
            i += 1
    return top, rest


def build_command(flow_file: str, subcommand: str, args: list[str], run_id_file: str,
                  python: str | None = None) -> list[str]:
    top, rest = split_options(args)
    return [python or sys.executable, flow_file, *top, subcommand, *rest,
            "--run-id-file", run_id_file]


def _check_flow(flow_file: str) -> str:
    path = os.path.abspath(flow_file)
    if not os.path.isfile(path):
        raise DevdError(f"{flow_file}: no such file; pass the path of your flow's .py file")
    return path


def execute(flow_file: str, subcommand: str, args: list[str],
            on_output: Callable[[str, str], None] | None = None,
            on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
            python: str | None = None, cwd: str | None = None) -> RunOutcome:
    """Run ``python FLOW [top opts] SUBCOMMAND [opts]`` and return its run id.

    Without ``on_output`` the child writes straight to this terminal (colors and all);
    with it, each line of stdout/stderr is handed over as it arrives.
    """
    path = _check_flow(flow_file)
    fd, id_file = tempfile.mkstemp(prefix="devd-run-id-")
    os.close(fd)
    os.unlink(id_file)
    command = build_command(path, subcommand, args, id_file, python)
    try:
        if on_output is None:
            proc = subprocess.Popen(command, cwd=cwd)
            if on_start:
                on_start(proc)
            code = proc.wait()
        else:
            # Its own process group: cancelling the run kills Metaflow's workers too.
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    cwd=cwd, start_new_session=True)
            if on_start:
                on_start(proc)
            pumps = [threading.Thread(target=_pump, args=(s, n, on_output), daemon=True)
                     for s, n in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
            for t in pumps:
                t.start()
            code = proc.wait()
            for t in pumps:
                t.join(timeout=5)
        run_id = None
        if os.path.exists(id_file):
            with open(id_file) as fh:
                run_id = fh.read().strip() or None
        return RunOutcome(code == 0, run_id, code, command)
    finally:
        if os.path.exists(id_file):
            os.unlink(id_file)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop a run: its process group when it leads one (the daemon's runs), else itself."""
    try:
        if os.name == "posix" and os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
            return
    except OSError:
        pass
    try:
        proc.kill()
    except OSError:
        pass


def _pump(stream: object, name: str, on_output: Callable[[str, str], None]) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        on_output(name, raw.decode("utf-8", errors="replace"))
