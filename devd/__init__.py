"""devd: the instant inner loop for Metaflow flows.

``devd.spin`` re-runs one step of a real Metaflow flow on its parents' recorded state;
``devd.Session`` keeps those parents warm in memory across spins.

Attributes load lazily so that ``devd`` CLI commands answered by a running daemon never
import the engine (or Metaflow).
"""

from __future__ import annotations

# Not `from typing import ...`: importing typing costs the CLI milliseconds it has not got.
TYPE_CHECKING = False

__all__ = ["DevdError", "Session", "SpinError", "SpinOptions", "SpinResult", "spin"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from typing import Any

    from .common.errors import DevdError
    from .common.options import SpinOptions
    from .common.report import SpinError
    from .core.result import SpinResult
    from .core.session import Session

_LAZY = {
    "DevdError": ("common.errors", "DevdError"),
    "Session": ("core.session", "Session"),
    "SpinOptions": ("common.options", "SpinOptions"),
    "SpinError": ("common.report", "SpinError"),
    "SpinResult": ("core.result", "SpinResult"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module 'devd' has no attribute {name!r}")


def spin(flow_file: str, target: str | SpinOptions, **options: Any) -> SpinResult:
    """Re-execute one step of ``flow_file`` with its parents' state, once.

    ``target`` is a step name (parents from the newest run that has them), ``run/step``,
    or ``Flow/run/step/task`` — or a whole ``devd.SpinOptions``. The keywords are its
    options (``artifacts``, ``artifacts_module``, ``config``, ``config_value``, ``persist``,
    ``debug``, ``pdb``...: the fields of ``SpinOptions``). Use :class:`Session` to keep
    parents warm across spins.
    """
    from .core.session import Session

    with Session(flow_file, warm_after_spin=False, prepare=False) as session:
        return session.spin(target, **options)
