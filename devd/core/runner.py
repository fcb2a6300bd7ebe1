"""Real Metaflow runs and resumes: ``python FLOW run|resume ...`` in a subprocess.

devd does not reimplement these: they are Metaflow's own, so a flow that runs here
deploys unchanged. devd only streams their output and reports the new run id.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..common.errors import DevdError
from .graph import OK, StepRecord, TaskOutcome, step_record, task_outcome

log = logging.getLogger("devd.runner")


@functools.cache
def top_level_options() -> dict[str, int]:
    """Metaflow's options that go before the subcommand (``python FLOW OPTS run``), each
    with how many values it takes.

    Read from Metaflow's own click command ``start`` as a flow sees it: with the
    ``--config``/``--config-value`` a flow with a Config gets, and the options flow
    decorators add (``@project``'s ``--branch``...). No copy to fall behind Metaflow.
    """
    from metaflow import Config, FlowSpec, cli, plugins, step
    from metaflow._vendor import click
    from metaflow.parameters import flow_context
    from metaflow.user_configs.config_options import config_options_with_config_input

    class OptionsProbe(FlowSpec):
        """The smallest flow with a Config: Metaflow adds its config options for it."""

        settings = Config("settings", default_value={})

        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    command = copy.copy(cli.start)
    command.params = list(cli.start.params)  # Metaflow's own command stays as it is
    with flow_context(OptionsProbe):
        command, _ = config_options_with_config_input(command)
    params = list(command.params)
    for deco in plugins.FLOW_DECORATORS:
        params += [click.Option(("--" + name,), **dict(kwargs))
                   for name, kwargs in deco.options.items()]
    arity: dict[str, int] = {}
    for param in params:
        if isinstance(param, click.Option):
            takes = 0 if param.is_flag or param.count else param.nargs
            for name in (*param.opts, *param.secondary_opts):
                arity[name] = takes
    return arity


# How often a run's task records are read for its progress and live states: a task that
# starts or ends shows within this (plus the read), or twice the last read's time if longer.
POLL_SECONDS = 0.1


@dataclass
class RunOutcome:
    ok: bool
    run_id: str | None
    returncode: int
    command: list[str]
    cancelled: bool = False  # stopped by devd/cancel (or its client leaving): not a failure


def split_options(args: list[str]) -> tuple[list[str], list[str]]:
    """Separate Metaflow's top-level options from the ``run``/``resume`` ones."""
    known = top_level_options()
    top: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in known:
            arity = 0 if "=" in arg else known[name]
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


class TaskProgress:
    """A run's progress from Metaflow's own task records (its metadata), not its log text.

    A step is done once it has tasks, every one of them succeeded, and the run went past
    it (a task of a next step exists, or it is the last step): a foreach wider than
    ``--max-workers`` does not look done while its later splits are still to start.
    ``on_states(run_id, steps)`` hears every step's record (running, ok, failed, not run;
    its task counts) each time one of them changes: tasks starting as well as finishing.
    """

    def __init__(self, flow_name: str, next_steps: dict[str, tuple[str, ...]],
                 on_progress: Callable[[int, int, str], None],
                 on_states: Callable[[str, dict[str, StepRecord]], None] | None = None
                 ) -> None:
        self.flow_name = flow_name
        self.next_steps = next_steps  # every step of the flow, in order, with its next steps
        self.on_progress = on_progress
        self.on_states = on_states
        self.done: list[str] = []
        self._settled: dict[str, TaskOutcome] = {}  # task pathspec: read once finished
        self._states: dict[str, StepRecord] | None = None

    def poll(self, run_id: str) -> None:
        """Read the run's task records; report each step newly done, and changed states."""
        from metaflow import Run
        from metaflow.exception import MetaflowNotFound

        try:
            run = Run(f"{self.flow_name}/{run_id}", _namespace_check=False)
            tasks = {step.id: list(step) for step in run}
        except MetaflowNotFound:  # the run id is written before the run is registered
            return
        self.update(tasks, run_id)

    def update(self, tasks: dict[str, list[Any]], run_id: str | None = None) -> None:
        """Report each step newly done, given the run's tasks so far by step name."""
        for name, after in self.next_steps.items():
            if name in self.done or not tasks.get(name):
                continue
            went_past = not after or any(tasks.get(n) for n in after)
            if went_past and all(self._outcome(task)[0] == OK for task in tasks[name]):
                self.done.append(name)
                self.on_progress(len(self.done), len(self.next_steps), name)
        if self.on_states is not None and run_id is not None:
            states = {name: step_record([self._outcome(t) for t in tasks.get(name, ())])
                      for name in self.next_steps}
            if states != self._states:
                self._states = states
                self.on_states(run_id, states)

    def _outcome(self, task: Any) -> TaskOutcome:
        known = self._settled.get(task.pathspec)
        if known is not None:
            return known
        outcome = task_outcome(task)
        if outcome[0] == OK:  # succeeded: it stays so. A task read as failed may be one
            self._settled[task.pathspec] = outcome  # read between its end and its _task_ok
        return outcome  # (seen under load: a foreach body never done): ask again


def _read_run_id(id_file: str) -> str | None:
    try:
        with open(id_file) as fh:
            return fh.read().strip() or None
    except FileNotFoundError:
        return None


def execute(flow_file: str, subcommand: str, args: list[str],
            on_output: Callable[[str, str], None] | None = None,
            on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
            python: str | None = None, cwd: str | None = None,
            on_run: Callable[[str], None] | None = None) -> RunOutcome:
    """Run ``python FLOW [top opts] SUBCOMMAND [opts]`` and return its run id.

    Without ``on_output`` the child writes straight to this terminal (colors and all);
    with it, each line of stdout/stderr is handed over as it arrives. ``on_run(run_id)``
    is called every ``POLL_SECONDS`` once Metaflow has written the run id, and once more
    when the run has ended (a ``TaskProgress.poll``).
    """
    path = _check_flow(flow_file)
    fd, id_file = tempfile.mkstemp(prefix="devd-run-id-")
    os.close(fd)
    os.unlink(id_file)
    command = build_command(path, subcommand, args, id_file, python)
    ended = threading.Event()
    poller = None
    if on_run is not None:
        poller = threading.Thread(target=_poll_run, args=(id_file, on_run, ended),
                                  daemon=True, name="devd-run-progress")
        poller.start()
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
        ended.set()
        if poller is not None:
            poller.join()
        run_id = _read_run_id(id_file)
        if run_id and on_run is not None:
            _report_run(on_run, run_id)
        return RunOutcome(code == 0, run_id, code, command)
    finally:
        ended.set()
        if os.path.exists(id_file):
            os.unlink(id_file)


def _poll_run(id_file: str, on_run: Callable[[str], None], ended: threading.Event) -> None:
    pause = POLL_SECONDS
    while not ended.wait(pause):
        run_id = _read_run_id(id_file)
        if run_id:
            began = time.monotonic()
            _report_run(on_run, run_id)
            # A big run's records take longer to read: the reads stay under 1/3 of a core.
            pause = max(POLL_SECONDS, 2 * (time.monotonic() - began))


def _report_run(on_run: Callable[[str], None], run_id: str) -> None:
    """Progress is a courtesy: records half-written or unreadable now are read next time."""
    try:
        on_run(run_id)
    except Exception:  # logged; the run itself goes on regardless
        log.exception("reading the task records of run %s failed", run_id)


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
