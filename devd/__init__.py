"""devd: the instant inner loop for Metaflow flows.

``devd.spin`` re-runs one step of a real Metaflow flow on its parents' recorded state;
``devd.Session`` keeps those parents warm in memory across spins.

Attributes load lazily so that ``devd`` CLI commands answered by a running daemon never
import the engine (or Metaflow).
"""

from __future__ import annotations

# Not `from typing import ...`: importing typing costs the CLI milliseconds it has not got.
TYPE_CHECKING = False

__all__ = ["DevdError", "Session", "SpinError", "SpinResult", "spin"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from typing import Any

    from .errors import DevdError
    from .result import SpinError, SpinResult
    from .session import Session

_LAZY = {
    "DevdError": ("errors", "DevdError"),
    "Session": ("session", "Session"),
    "SpinError": ("result", "SpinError"),
    "SpinResult": ("result", "SpinResult"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module 'devd' has no attribute {name!r}")


def spin(
    flow_file: str,
    step: str,
    *,
    artifacts: dict[str, Any] | None = None,
    artifacts_module: str | None = None,
    config_value: dict[str, Any] | None = None,
    config: dict[str, str] | None = None,
    persist: bool = False,
) -> SpinResult:
    """Re-execute one step of ``flow_file`` with its parents' state, once.

    ``step`` is a step name (parents from the newest run that has them), ``run/step``,
    or ``Flow/run/step/task``. Use :class:`Session` to keep parents warm across spins.
    """
    from .session import Session

    with Session(flow_file, warm_after_spin=False, prepare=False) as session:
        return session.spin(step, artifacts=artifacts, artifacts_module=artifacts_module,
                            config=config, config_value=config_value, persist=persist)
