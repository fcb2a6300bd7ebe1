"""Where a step runs: the interpreter Metaflow would start its task in.

A spin runs the step where ``python flow.py --environment=... run`` would: the daemon's
own interpreter for most steps, else another (a ``@pypi``/``@conda`` environment, an
extension's decorator that points the task elsewhere, the uv project's environment),
where a warm worker of devd spins it (devd/core/workers.py). Metaflow is asked, not
second-guessed: a forked child runs the decorators' own hooks (devd/child/envprobe.py).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from ..child.envprobe import probe
from ..common.errors import DevdError
from ..common.forking import run_in_child
from ..common.options import SpinOptions
from .flowmodel import FlowModel

# Environments whose interpreter Metaflow builds (micromamba): not there until a run made it.
_BUILT = ("pypi", "conda")


@dataclass(frozen=True)
class StepEnvironment:
    """The environment a step is spun in: its name (Metaflow's ``--environment``, or the
    decorator that moved the step), its interpreter and the variables its hooks set."""

    name: str
    python: str
    env: dict[str, str] = field(default_factory=dict)
    notice: str | None = None
    environment: str = "local"  # Metaflow's --environment for the step's CLI

    @property
    def here(self) -> bool:
        """The daemon's own interpreter (a venv's python is a link: compare paths as given)."""
        return os.path.normpath(os.path.abspath(self.python)) == \
            os.path.normpath(os.path.abspath(sys.executable))

    def describe(self) -> dict[str, str]:
        """``{name, python, version}`` for a result (the editor's pane header)."""
        return {"name": self.name, "python": self.python, "version": self.version}

    @functools.cached_property
    def version(self) -> str:
        """The interpreter's ``3.11``, read once per answer (not on every spin)."""
        return python_version(self.python)


def python_version(python: str) -> str:
    """``3.11`` of an interpreter, from its venv's pyvenv.cfg or its name; "" if unknown."""
    if os.path.normpath(os.path.abspath(python)) == os.path.normpath(sys.executable):
        return f"{sys.version_info[0]}.{sys.version_info[1]}"
    cfg = os.path.join(os.path.dirname(os.path.dirname(python)), "pyvenv.cfg")
    try:
        with open(cfg, encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition("=")
                if key.strip() in ("version", "version_info"):
                    return ".".join(value.strip().split(".")[:2])
    except OSError:
        pass
    name = os.path.basename(os.path.realpath(python))
    return name[len("python"):] if name.startswith("python") and "." in name else ""


def top_level_args(options: SpinOptions, environment: str) -> list[str]:
    """Metaflow's top-level options for the step's CLI, as ``python flow.py`` takes them."""
    args = ["--environment", environment]
    if options.datastore:
        args += ["--datastore", options.datastore]
    if options.metadata:
        args += ["--metadata", options.metadata]
    for spec in options.decospecs:
        args += ["--with", spec]
    return args


def environment_name(model: FlowModel, step: str, options: SpinOptions,
                     recorded: dict[str, str] | None = None) -> str:
    """The spin's ``--environment``: as given, else what the parents' run used.

    A step with ``@pypi`` or ``@conda`` runs only under ``--environment=pypi|conda``
    (Metaflow refuses any other), so its run used that one. A run's task that ran in a
    conda/pypi environment recorded its ``conda_env_prefix`` (``recorded``: see
    ``recorded_hints``), as every task of an ``--environment=pypi`` run does; otherwise
    ``local``.
    """
    if options.environment:
        return options.environment
    decorators = model.steps[step].decorators
    for name in _BUILT:
        if name in decorators:
            return name
    if recorded and recorded.get("conda_env_prefix"):
        return "pypi"
    return "local"


def recorded_hints(pathspecs: list[str]) -> dict[str, str]:
    """What the parents' run recorded of where its tasks ran: the first of ``pathspecs``
    (the recorded task, then its parents) Metaflow's Client reads, its
    ``conda_env_prefix`` and ``python_version`` metadata."""
    from metaflow import Task

    for pathspec in pathspecs:
        try:
            meta = Task(pathspec, _namespace_check=False).metadata_dict
        except Exception:  # noqa: BLE001 - gone, or a service hiccup: no hint from it
            continue
        return {key: str(meta[key]) for key in ("conda_env_prefix", "python_version")
                if meta.get(key)}
    return {}


def _python_notice(recorded: dict[str, str], step: str) -> str | None:
    """A line when the parents' run ran on another Python than this interpreter: it was
    launched with another one (``uv run``, another venv), which devd cannot tell apart."""
    import platform

    version = recorded.get("python_version")
    if not version or version == platform.python_version():
        return None
    return (f"the parents' run ran on Python {version}, devd on {platform.python_version()} "
            f"({sys.executable}): if it was launched with another interpreter, spin "
            f"'{step}' with --environment=uv (a uv project) or from that interpreter's devd")


@functools.lru_cache(maxsize=256)
def _moves_interpreter(decorators: tuple[str, ...]) -> bool:
    """Whether a decorator a spin keeps has a hook that may change the task's command
    (asked on every spin: the answer, fixed once Metaflow's plugins are loaded, is kept)."""
    from metaflow.decorators import StepDecorator
    from metaflow.plugins import STEP_DECORATORS

    from ..child.request import spin_kept_decorators

    kept = spin_kept_decorators()
    by_name = {cls.name: cls for cls in STEP_DECORATORS}
    for name in decorators:
        cls = by_name.get(name)
        if cls is None or not any(name.startswith(p) for p in kept):
            continue
        if cls.runtime_step_cli is not StepDecorator.runtime_step_cli or \
                cls.runtime_task_created is not StepDecorator.runtime_task_created:
            return True
    return False


class StepEnvironments:
    """Each step's environment, asked of Metaflow once per version of its decorators and
    options (a forked child imports the flow; steps no hook can move cost nothing)."""

    def __init__(self) -> None:
        # (flow, step) -> (what the answer depends on, the answer): the last one per step
        self._known: dict[tuple[str, str], tuple[tuple[object, ...], StepEnvironment]] = {}
        # (flow, step) -> (the model, environment and options it was last asked with, the
        # answer): a warm spin of an unchanged file reads nothing (the model is made anew
        # when the file's mtime or size changes)
        self._last: dict[tuple[str, str], tuple[FlowModel, tuple[object, ...],
                                                 StepEnvironment]] = {}

    def resolve(self, model: FlowModel, step: str, options: SpinOptions, cwd: str,
                recorded: dict[str, str] | None = None) -> StepEnvironment:
        """``recorded``: ``recorded_hints`` of the parents' run (None: not known)."""
        name = environment_name(model, step, options, recorded)
        decorators = model.steps[step].decorators
        if name == "local" and not options.decospecs and not _moves_interpreter(decorators):
            notice = _python_notice(recorded, step) if recorded and not options.environment \
                else None
            return StepEnvironment("local", sys.executable, notice=notice)
        asked = (name, tuple(top_level_args(options, name)))
        last = self._last.get((model.path, step))
        if last is not None and last[0] is model and last[1] == asked:
            return last[2]
        key = (_source_key(model, step), *asked)
        known = self._known.get((model.path, step))
        if known is None or known[0] != key:
            known = self._known[(model.path, step)] = \
                (key, _ask_metaflow(model, step, options, name, cwd))
        self._last[(model.path, step)] = (model, asked, known[1])
        return known[1]


def _source_key(model: FlowModel, step: str) -> str:
    """What the answer depends on in the file: the step's decorators and ``def`` line, and
    every decorator line of the file (a flow's ``@pypi_base``); editing the step's body
    asks Metaflow nothing again."""
    with open(model.path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    info = model.steps[step]
    text = "\n".join(lines[info.start_line - 1:info.def_line])
    text += "\n".join(line for line in lines if line.lstrip().startswith("@"))
    return hashlib.sha1(text.encode()).hexdigest()


def _ask_metaflow(model: FlowModel, step: str, options: SpinOptions, name: str,
                  cwd: str) -> StepEnvironment:
    flow = os.path.relpath(model.path, cwd) if model.path.startswith(cwd + os.sep) \
        else model.path
    create = f"`python {flow} --environment={name} run` creates it"
    outcome = run_in_child(probe, model.path, cwd, step, top_level_args(options, name))
    answer: dict[str, Any] = outcome.value if isinstance(outcome.value, dict) else \
        {"error": (outcome.crashed or "no answer").strip().splitlines()[-1]}
    if "error" in answer:
        where = answer.get("where", "")
        if name in _BUILT or any(b in where for b in _BUILT):
            raise DevdError(f"step '{step}' runs in its {name} environment, which is not "
                            f"created on this machine ({where or 'Metaflow'}: "
                            f"{answer['error']}); {create}")
        given = " ".join(top_level_args(options, name))
        raise DevdError(f"Metaflow could not say where step '{step}' runs with {given} "
                        f"({where or 'its CLI'}: {answer['error']}); check those options")
    python = str(answer["entrypoint"][0])
    env = {str(k): str(v) for k, v in answer.get("env", {}).items()}
    moved_by = [d for d in answer.get("decorators", [])
                if os.path.abspath(python) != os.path.abspath(sys.executable)]
    label = name
    if name == "uv":
        python, notice = _uv_interpreter(model.path, step)
        return StepEnvironment("uv", python, env, notice, "uv")
    if name not in _BUILT and moved_by and python != sys.executable:
        label = f"@{moved_by[-1]}" if name == "local" else f"{name} @{moved_by[-1]}"
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        if name in _BUILT:
            raise DevdError(f"step '{step}' runs in its {name} environment, whose "
                            f"interpreter {python} is not created on this machine; {create}")
        raise DevdError(f"step '{step}' runs in {python} (set by {label}), which is not "
                        "there: create that environment, or spin with --environment=local")
    return StepEnvironment(label, python, env, environment=name)


def _uv_interpreter(flow_file: str, step: str) -> tuple[str, str | None]:
    """The interpreter a ``--environment=uv`` run was launched with: Metaflow runs local
    uv steps in the launching interpreter, which ``uv run python flow.py`` makes the uv
    project's environment (``UV_PROJECT_ENVIRONMENT``, else ``.venv`` beside its
    ``uv.lock``). A notice says when that is not the daemon's."""
    folder = os.path.dirname(os.path.abspath(flow_file))
    project = None
    while True:
        if os.path.isfile(os.path.join(folder, "uv.lock")):
            project = folder
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if project is None:
        raise DevdError(f"--environment=uv: no uv.lock in {os.path.dirname(flow_file)} or "
                        "above it; `uv lock` makes one (or spin with --environment=local)")
    venv = os.path.join(project, os.environ.get("UV_PROJECT_ENVIRONMENT") or ".venv")
    python = os.path.join(venv, "Scripts" if os.name == "nt" else "bin",
                          "python.exe" if os.name == "nt" else "python")
    if not os.path.isfile(python):
        raise DevdError(f"--environment=uv: the uv project's environment {venv} is not "
                        f"created; `uv sync` in {project} creates it")
    if os.path.normpath(python) == os.path.normpath(os.path.abspath(sys.executable)):
        return python, None
    return python, (f"--environment=uv: the run was launched with {python} (the uv "
                    f"project's environment), not devd's {sys.executable}: step '{step}' "
                    "was spun there")
