"""Metaflow's CLI and task runner, taken over for one step on warm parents.

The child runs Metaflow's own ``start`` command, so configs, decorators and the
environment are set up exactly as ``python flow.py spin`` sets them up; a hidden
``devd-spin-step`` subcommand then hands the step to devd, which runs it with a
``MetaflowTask`` reading the warm parents.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .request import ChildResult, Outdated, SpinRequest
from .state import State


def run_cli(flow_cls: Any, req: SpinRequest,
            run_step: Callable[[Any], ChildResult | Outdated]) -> Any:
    """Run Metaflow's CLI for the flow up to devd's command, which calls ``run_step``
    with the CLI's state and keeps its outcome in ``State.result``; the CLI's exit code."""
    from metaflow import parameters

    _quiet_skipped_decorators()
    _report_parser_failures()
    args = [
        "--quiet", "--no-pylint", "--datastore", "local", "--metadata", "local",
        "--environment", "local", "--event-logger", "nullSidecarLogger",
        "--monitor", "nullSidecarMonitor", *req.config_args,
        *_config_value_args(flow_cls, req.config_values), "devd-spin-step",
    ]
    with parameters.flow_context(flow_cls):
        mf_cli = _fresh_metaflow_cli()
        # Metaflow applies METAFLOW_DEFAULT_DECOSPECS to neither `spin` nor `spin-step`
        # (a default `timeout` or `retry` is for real runs); nor does devd's command.
        mf_cli.DEFAULT_DECOSPECS = ""
        _register_command(mf_cli, run_step)
        return _run_main(mf_cli, flow_cls(use_cli=False), args, [sys.executable, req.flow_file])


def _quiet_skipped_decorators() -> None:
    """No "[Warning] Ignoring Step decorator" lines in the step's output.

    Metaflow prints one for every decorator of *every* step it does not run in a spin,
    twice; the spun step's own skipped decorators are in the result's notices instead.
    """
    from metaflow import decorators

    real = decorators._should_skip_decorator_for_spin
    if getattr(real, "_devd_quiet", False):
        return

    def should_skip(deco: Any, is_spin: Any, skip_decorators: Any, logger: Any,
                    decorator_type: str = "decorator") -> bool:
        return real(deco, is_spin, skip_decorators, lambda *a, **k: None, decorator_type)

    should_skip._devd_quiet = True  # type: ignore[attr-defined]
    decorators._should_skip_decorator_for_spin = should_skip


def _fresh_metaflow_cli() -> Any:
    """Metaflow's CLI module, executed afresh inside the current flow context.

    ``metaflow.cli`` adds the flow's ``--config`` and decorator options to its ``start``
    command when it is imported; the warm parent imported it with no flow, so each child
    executes it again for its own flow (its dependencies stay warm).
    """
    import importlib

    sys.modules.pop("metaflow.cli", None)
    return importlib.import_module("metaflow.cli")


def _config_value_args(flow_cls: Any, values: dict[str, Any]) -> list[str]:
    """``--config-value NAME kv.NAME`` for Configs whose value is already parsed.

    Metaflow's runtime hands a task its run's Config values this way: the ``kv.`` mark
    makes its CLI take the value as it is from ``ConfigInput``'s table instead of putting
    a text through the Config's parser (TOML, YAML, a function of the flow...). A run's
    recorded values and values given to a spin as objects go this way.
    """
    if not values:
        return []
    from metaflow.user_configs.config_options import ConfigInput

    plain = {param.name: bool(param.kwargs.get("plain", False))
             for _, param in flow_cls._get_parameters()
             if getattr(param, "IS_CONFIG_PARAMETER", False)}
    table: dict[str, tuple[Any, bool]] = {}
    args: list[str] = []
    for name, value in values.items():
        if name in plain:  # a Config since removed from the flow is not asked for
            table[name] = (value, plain[name])
            args += ["--config-value", name, ConfigInput.make_key_name(name)]
    ConfigInput.loaded_configs = table  # type: ignore[assignment]  # as its runtime fills it
    return args


def _report_parser_failures() -> None:
    """A Config parser that refuses a value given to the spin: one line naming it."""
    from metaflow._vendor import click
    from metaflow.user_configs.config_options import ConfigInput

    original = ConfigInput._call_parser

    def call_parser(parser: Any, val: str, is_plain: bool) -> Any:
        try:
            return original(parser, val, is_plain)
        except Exception as exc:
            name = parser if isinstance(parser, str) else \
                getattr(parser, "__qualname__", repr(parser))
            detail = (str(exc).strip().splitlines() or [""])[0]
            raise click.UsageError(f"the Config parser {name} refused the value given: "
                                   f"{type(exc).__name__}: {detail}") from exc

    ConfigInput._call_parser = staticmethod(call_parser)  # type: ignore[method-assign]


def _run_main(mf_cli: Any, flow: Any, args: list[str], entrypoint: list[str]) -> Any:
    """``metaflow.cli.main`` without click's standalone mode: a usage error (a Config
    value its parser refuses, say) is raised here instead of printed and exited on."""
    import warnings

    warnings.filterwarnings("ignore")  # as Metaflow's main does
    state = mf_cli.CliState(flow)
    state.entrypoint = entrypoint
    try:
        return mf_cli.start.main(args=args, obj=state, auto_envvar_prefix="METAFLOW",
                                 standalone_mode=False)
    finally:
        for part in (getattr(state, "monitor", None), getattr(state, "event_logger", None)):
            if part is not None:
                part.terminate()


def _register_command(mf_cli: Any, run_step: Callable[[Any], ChildResult | Outdated]) -> None:
    from metaflow._vendor import click

    @click.command("devd-spin-step", hidden=True, help="devd: run one step on warm parents.")
    @click.pass_context
    def devd_spin_step(ctx: Any) -> None:
        State.result = run_step(ctx.obj)

    mf_cli.cli.add_command(devd_spin_step)


def warm_task_class() -> Any:
    from metaflow.task import MetaflowTask

    class WarmMetaflowTask(MetaflowTask):
        """Metaflow's task runner, reading every join input from the warm parents."""

        def _init_data(self, run_id: str, join_type: Any, input_paths: list[str]) -> Any:
            # Above 4 inputs Metaflow switches to TaskDataStoreSet, which lists the spin
            # datastore instead of the parents (its spin fails there): one by one instead.
            datastores = []
            for path in input_paths:
                datastores += super()._init_data(run_id, join_type, [path])
            return datastores

    return WarmMetaflowTask


def spun_task_in_client() -> None:
    """``current.task`` and ``current.run`` find the spun task, as in Metaflow's spin.

    They read it through the metadata the task is recorded in (the spin's own); the rest
    of the Client keeps reading the project's runs, so a step may still look at them.
    """
    from metaflow import Run, Task
    from metaflow.metaflow_current import Current

    def task(self: Any) -> Any:
        parts = (self._flow_name, self._run_id, self._step_name, self._task_id)
        if any(part is None for part in parts):
            return None
        return Task("/".join(parts), _namespace_check=False,
                    _current_metadata=self._metadata_str)

    def run(self: Any) -> Any:
        parts = (self._flow_name, self._run_id)
        if any(part is None for part in parts):
            return None
        return Run("/".join(parts), _namespace_check=False,
                   _current_metadata=self._metadata_str)

    Current.task = property(task, doc=Current.task.__doc__)  # type: ignore[method-assign,assignment]
    Current.run = property(run, doc=Current.run.__doc__)  # type: ignore[method-assign,assignment]
