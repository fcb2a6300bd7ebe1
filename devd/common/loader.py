"""Import a flow file afresh, the way ``python flow.py`` would, inside a child process.

Runs only in children: the warm parent keeps library imports (metaflow, numpy, ...)
hot, while every child re-executes the user's own modules so that edits count.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import sys
import sysconfig
from types import ModuleType
from typing import Any

from .errors import DevdError


@functools.cache
def _library_prefixes() -> tuple[str, ...]:
    """Where code nobody edits between spins lives: the standard library, installed
    packages, and devd and Metaflow themselves (even from a source checkout)."""
    import site

    import metaflow

    paths = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    try:
        paths.update(site.getsitepackages())
        paths.add(site.getusersitepackages())
    except AttributeError:  # an embedded interpreter's reduced site module
        pass
    paths.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # devd/
    paths.add(os.path.dirname(os.path.abspath(metaflow.__file__)))
    prefixes = set()
    for path in paths:
        if path:
            prefixes.add(os.path.abspath(path) + os.sep)
            prefixes.add(os.path.realpath(path) + os.sep)
    return tuple(sorted(prefixes))


_INSTALLED = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def _is_library_path(path: str) -> bool:
    return path.startswith(_library_prefixes()) or any(part in path for part in _INSTALLED)


def is_user_file(path: str | None) -> bool:
    """A source file the user may edit between spins: anywhere but the standard library,
    installed packages, devd and Metaflow (so also a ``lib/`` put on ``sys.path``, or the
    source of a package of the user's installed in editable mode)."""
    if not path or path.startswith("<") or _is_library_path(path):
        return False  # frozen and built-in modules, and libraries, by their path as given
    real = os.path.realpath(path)  # also makes a path found through a relative entry whole
    return real == path or not _is_library_path(real)


def is_user_module(module: ModuleType) -> bool:
    """A module whose code the user may edit: see ``is_user_file``."""
    try:  # not getattr: a lazy module's __getattr__ would import things
        path = vars(module).get("__file__")
    except TypeError:  # an object in sys.modules that is not a module (no __dict__)
        return False
    return isinstance(path, str) and is_user_file(path)


# id(module) -> (module, verdict): a module's file does not change while it is imported.
# The warm process fills it before it forks (``user_modules``), so a child only looks at
# the modules imported since.
_VERDICTS: dict[int, tuple[ModuleType, bool]] = {}


def user_modules() -> dict[str, ModuleType]:
    """The imported modules of user code (never ``__main__``: that is the host program)."""
    found = {}
    for name, module in list(sys.modules.items()):
        known = _VERDICTS.get(id(module))
        if known is None or known[0] is not module:
            known = (module, module is not None and is_user_module(module))
            _VERDICTS[id(module)] = known
        if known[1] and name != "__main__":
            found[name] = module
    return found


def forget_user_modules() -> None:
    """Drop the user's own modules from ``sys.modules`` so the next import re-reads them:
    those next to the flow, and those elsewhere (a helper folder on ``sys.path``, an
    editable-installed package), whoever imported them first (a notebook, say)."""
    for name in user_modules():
        del sys.modules[name]


def import_flow_module(flow_file: str) -> ModuleType:
    """Execute ``flow_file`` as a fresh module named after the file (not ``__main__``)."""
    path = os.path.abspath(flow_file)
    flow_dir = os.path.dirname(path)
    forget_user_modules()
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
