"""A spin's Configs: the ones given to it, else the ones its run recorded."""

from __future__ import annotations

import os
from typing import Any

from ..common.errors import DevdError
from ..common.warmstore import WarmTask
from .flowmodel import FlowModel


def config_args(model: FlowModel, warm_tasks: list[WarmTask], config: dict[str, str],
                config_value: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Every Config's value for the child: the given ones, else the run's.

    Returns ``--config``/``--config-value`` arguments for what Metaflow must still read
    or parse (a file, a text), and the values that are parsed already (the run's
    recorded ones, objects given to the spin): those the child hands Metaflow as they
    are, the way Metaflow's runtime passes a run's Configs to its tasks (``kv.``).
    """
    known = {p.name: p for p in model.configs()}
    unknown = [n for n in list(config) + list(config_value) if n not in known]
    if unknown:
        names = ", ".join(known) or "none"
        raise DevdError(f"{model.flow_name} has no Config '{unknown[0]}'; its Configs: {names}")
    args: list[str] = []
    values: dict[str, Any] = {}
    recorded = warm_tasks[0] if warm_tasks else None
    if recorded is not None:  # a big Config is not loaded eagerly
        recorded.ensure([p.var for p in known.values()
                         if p.name not in config and p.name not in config_value])
    for name, param in known.items():
        if name in config_value:
            value = config_value[name]
            if isinstance(value, str):  # a text, as on Metaflow's command line: parsed
                args += ["--config-value", name, value]
            else:
                values[name] = _config_object(value)
        elif name in config:
            path = os.path.abspath(config[name])
            if not os.path.isfile(path):
                raise DevdError(f"config file {config[name]} for '{name}' does not exist")
            args += ["--config", name, path]
        elif recorded is not None and param.var in recorded.values:
            values[name] = _config_object(recorded.values[param.var])
    return args, values


def _config_object(value: Any) -> Any:
    """A Config's value as Metaflow keeps it: a ``ConfigValue`` as the dict it wraps."""
    return value.to_dict() if hasattr(value, "to_dict") else value
