"""Import a flow file afresh, the way ``python flow.py`` would, inside a child process.

Runs only in children: the warm parent keeps library imports (metaflow, numpy, ...)
hot, while every child re-executes the user's own modules so that edits count.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import sysconfig
from types import ModuleType
from typing import Any

from .errors import DevdError

_LIBRARY_ROOTS = tuple(
    os.path.realpath(p)
    for p in {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    | {sys.prefix, sys.base_prefix}
)


def is_user_module(module: ModuleType, root: str) -> bool:
    """A module the user may be editing: its file lives under ``root`` and outside libraries."""
    path = getattr(module, "__file__", None)
    if not path or not path.startswith(root + os.sep):
        return False  # files outside the project (and frozen/builtin modules) stay cached
    real = os.path.realpath(path)
    if not real.startswith(root + os.sep):
        return False
    return not any(real.startswith(lib + os.sep) for lib in _LIBRARY_ROOTS)


def forget_user_modules(root: str) -> None:
    """Drop the user's own modules from ``sys.modules`` so the next import re-reads them."""
    root = os.path.realpath(root)
    for name, module in list(sys.modules.items()):
        if module is not None and is_user_module(module, root):
            del sys.modules[name]


def import_flow_module(flow_file: str) -> ModuleType:
    """Execute ``flow_file`` as a fresh module named after the file (not ``__main__``)."""
    path = os.path.abspath(flow_file)
    flow_dir = os.path.dirname(path)
    forget_user_modules(flow_dir)
    if flow_dir not in sys.path:
        sys.path.insert(0, flow_dir)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DevdError(f"{flow_file}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.argv = [path]
    spec.loader.exec_module(module)
    return module


def find_flow_class(module: ModuleType, flow_file: str) -> Any:
    """The one FlowSpec subclass defined in the module (as Metaflow's Runner finds it)."""
    from metaflow import FlowSpec

    found = []
    for _, obj in inspect.getmembers(module):
        kls = getattr(obj, "_flow_cls", obj)
        if (
            inspect.isclass(kls)
            and issubclass(kls, FlowSpec)
            and kls is not FlowSpec
            and kls.__module__ == module.__name__
            and kls not in found
        ):
            found.append(kls)
    if not found:
        raise DevdError(
            f"{flow_file}: not a Metaflow flow (no FlowSpec subclass is defined in it); "
            "pass the file that defines your flow class"
        )
    if len(found) > 1:
        names = ", ".join(k.__name__ for k in found)
        raise DevdError(f"{flow_file}: defines several flows ({names}); keep one flow per file")
    return found[0]


def load_flow_class(flow_file: str) -> Any:
    """Import ``flow_file`` fresh and return its flow class."""
    return find_flow_class(import_flow_module(flow_file), flow_file)
