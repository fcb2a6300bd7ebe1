"""Artifact overrides: ``--artifacts-module``, Python's ``artifacts=`` and a spin's Configs.

They are the parent state a spin runs with, keyed as Metaflow keys its own spin's
overrides: plain names for every input, a parent pathspec for one input of a join.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

from ..common.bounds import one_line
from .request import SpinRequest
from .state import State


def read_overrides(req: SpinRequest) -> None:
    """Artifact overrides from ``--artifacts-module`` and Python, keyed as Metaflow keys them.

    For a join, Metaflow keys overrides by parent pathspec (``run/step/task``); a key
    ``Flow/run/step/task`` is accepted too, and plain names apply to every input.
    """
    from ..common.errors import DevdError

    merged: dict[str, Any] = {}
    if req.options.artifacts_module:
        merged.update(_read_artifacts_module(req.options.artifacts_module))
    for key, value in (req.options.artifacts or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and "/" in key:
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    inputs = ["/".join(p.split("/")[:3]) for p in req.input_paths]
    plain = {k: v for k, v in merged.items() if "/" not in k}
    per_input: dict[str, dict[str, Any]] = {p: dict(plain) for p in inputs}
    for key, value in merged.items():
        if "/" not in key:
            continue
        parts = key.strip("/").split("/")
        short = "/".join(parts[-3:])
        if short not in per_input or not isinstance(value, dict):
            raise DevdError(
                f"artifact override key '{key}' names no input of this step; "
                f"use one of: {', '.join(inputs)}"
            )
        per_input[short].update(value)
    State.spin_artifacts = plain
    State.join_artifacts = per_input


def _read_artifacts_module(given: str) -> dict[str, Any]:
    """``ARTIFACTS`` of an ``--artifacts-module`` file, each failure named by its real cause.

    Metaflow's own ``read_artifacts_module`` raises a ``NameError`` for every failure (it
    uses ``MetaflowInternalError`` without importing it), hiding the cause: read it here.
    """
    import importlib.machinery
    import importlib.util

    from ..common.errors import DevdError

    path = os.path.abspath(given)
    _check_module_file(given, path)
    if not path.endswith(".py"):
        raise DevdError(f"{given}: not a .py file; an artifacts module is a Python file "
                        "that defines ARTIFACTS = {name: value}")
    name = os.path.splitext(os.path.basename(path))[0]
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        loader.exec_module(module)
    except SyntaxError as exc:  # lineno is None for a file Python cannot even tokenize
        where = f"{given}:{exc.lineno}" if exc.lineno else given
        raise DevdError(f"{where}: SyntaxError: {one_line(exc.msg or str(exc))}; fix the "
                        "artifacts module and spin again") from None
    except BaseException as exc:  # user code: name whatever it raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        tb = traceback.extract_tb(exc.__traceback__)
        frames = [f for f in tb if os.path.abspath(f.filename) == path]
        where = f"{given}:{frames[-1].lineno}" if frames else given
        raise DevdError(f"{where}: importing the artifacts module raised "
                        f"{type(exc).__name__}: {one_line(str(exc))}") from None
    if not hasattr(module, "ARTIFACTS"):
        raise DevdError(f"{given}: defines no ARTIFACTS; it must define "
                        "ARTIFACTS = {name: value}")
    artifacts = module.ARTIFACTS
    if not isinstance(artifacts, dict):
        raise DevdError(f"{given}: ARTIFACTS must be a dict, not {type(artifacts).__name__}")
    return artifacts


def _check_module_file(given: str, path: str) -> None:
    """A regular file, or a one-line DevdError naming what ``given`` is instead (a FIFO
    is never opened: reading it would wait for a writer)."""
    import stat

    from ..common.errors import DevdError

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DevdError(f"{given}: no such artifacts module; pass a .py "
                        "file that defines ARTIFACTS = {...}") from None
    except OSError as exc:
        raise DevdError(f"{given}: cannot read the artifacts module ({exc.strerror}); check "
                        "its path and permissions") from None
    if stat.S_ISREG(mode):
        return
    kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) \
        else "a socket" if stat.S_ISSOCK(mode) else "a device"
    raise DevdError(f"{given}: is {kind}, not a file; pass the path of a .py file that "
                    "defines ARTIFACTS = {...}")


def apply_config_overrides(flow: Any) -> None:
    """Make the step body read the config values given to this spin (not the recorded ones)."""
    add_config_values(config_override_values(flow))


def add_config_values(values: dict[str, Any]) -> None:
    """Put Config values (``config_override_values``) among every input's overrides."""
    for overrides in (State.spin_artifacts, *State.join_artifacts.values()):
        overrides.update(values)


def config_override_values(flow: Any) -> dict[str, Any]:
    """The Configs given to this spin, by attribute name (none: every Config is the run's).
    Read before Metaflow's task set-up, which turns the flow's Parameters into properties."""
    from metaflow.flowspec import FlowStateItems

    if not State.request.config_overrides:
        return {}
    configs = flow.__class__._flow_state[FlowStateItems.CONFIGS]
    return {var: configs[param.name][0] for var, param in flow._get_parameters()
            if getattr(param, "IS_CONFIG_PARAMETER", False) and param.name in configs}
