"""Which interpreter Metaflow would run a step in: asked of Metaflow itself, in a child.

Metaflow's runtime starts each task as ``cli_args.entrypoint`` (``[python, flow.py]``), and
a step's decorators may change it in their ``runtime_step_cli`` hook: ``@conda`` and
``@pypi`` point it at their environment's interpreter (metaflow/plugins/pypi/
conda_decorator.py), and so may any extension's decorator. This child imports the flow,
runs Metaflow's ``start`` with the spin's top-level options (``--environment``, ``--with``,
...) up to a hidden command, and calls the hooks Metaflow's spin runtime calls for the
decorators a spin keeps (``runtime_init``, ``runtime_task_created``, ``runtime_step_cli``),
then reports the entrypoint and the environment variables they set. Nothing is run.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any


class _CliArgs:
    """What ``runtime_step_cli`` reads and changes of Metaflow's ``CLIArgs``."""

    def __init__(self, flow_file: str) -> None:
        self.entrypoint = [sys.executable, flow_file]
        self.top_level_options: dict[str, Any] = {}
        self.commands = ["step"]
        self.command_args: list[str] = []
        self.command_options: dict[str, Any] = {}
        self.env: dict[str, str] = {}


class _NoPackage:
    """The code package ``runtime_init`` hooks may extract: devd makes Metaflow and the
    flow's code importable in the step's interpreter itself, so nothing is extracted."""

    def __init__(self) -> None:
        self.package_metadata: dict[str, Any] = {}

    def extract_into(self, *args: Any, **kwargs: Any) -> None:
        return None

    def get_post_extract_env_vars(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        return {}


def probe(flow_file: str, cwd: str, step: str, top_args: list[str]) -> dict[str, Any]:
    """In a child: ``{environment, entrypoint, env, decorators}`` for ``step``, or
    ``{error, where}`` (``where``: the decorator or phase that failed)."""
    os.chdir(cwd)
    from metaflow import parameters
    from metaflow._vendor import click

    from ..common.loader import load_flow_class
    from .request import spin_kept_decorators
    from .takeover import _fresh_metaflow_cli

    answer: dict[str, Any] = {}
    flow_cls = load_flow_class(flow_file)

    @click.command("devd-spin-env", hidden=True)  # "spin" in its name: spin's decorators
    @click.pass_obj
    def devd_spin_env(obj: Any) -> None:
        allowed = spin_kept_decorators()
        node = next((s for s in obj.flow if s.name == step), None)
        if node is None:
            answer["error"] = f"no step '{step}' in the flow"
            return
        kept = [d for d in node.decorators if any(d.name.startswith(p) for p in allowed)]
        args = _CliArgs(flow_file)
        answer.update(environment=obj.environment.TYPE, decorators=[d.name for d in kept])
        for phase in ("runtime_init", "runtime_task_created", "runtime_step_cli"):
            for deco in kept:
                answer["where"] = f"@{deco.name} ({phase})"
                if phase == "runtime_init":
                    ctx_hook = getattr(deco, "runtime_init_ctx", None)
                    if ctx_hook is not None:
                        ctx_hook(step)
                    else:
                        deco.runtime_init(obj.flow, obj.graph, _NoPackage(), "devd-probe")
                elif phase == "runtime_task_created":
                    deco.runtime_task_created(None, "1", None, [], False, None)
                else:
                    deco.runtime_step_cli(args, 0, 0, None)
        answer.pop("where", None)
        answer.update(entrypoint=list(args.entrypoint), env=dict(args.env))

    try:
        with parameters.flow_context(flow_cls):
            mf_cli = _fresh_metaflow_cli()
            mf_cli.DEFAULT_DECOSPECS = ""
            mf_cli.cli.add_command(devd_spin_env)
            state = mf_cli.CliState(flow_cls(use_cli=False))
            state.entrypoint = [sys.executable, flow_file]
            mf_cli.start.main(args=["--quiet", "--no-pylint", *top_args, "devd-spin-env"],
                              obj=state, auto_envvar_prefix="METAFLOW",
                              standalone_mode=False)
    except BaseException as exc:  # noqa: BLE001 - reported as one line by the caller
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        answer["error"] = f"{type(exc).__name__}: {detail}"
        answer["traceback"] = traceback.format_exc()
    return answer
