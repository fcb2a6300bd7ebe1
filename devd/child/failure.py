"""How a failure reads in a spin's result: one shape, ``SpinError`` (devd/common/report.py),
pointing at the innermost frame of the user's flow file, its text bounded
(devd/common/bounds.py)."""

from __future__ import annotations

import os
import traceback
from typing import Any

from ..common.bounds import bound_error
from ..common.report import SpinError
from .request import SpinRequest


def error_info(exc: BaseException, flow_file: str) -> SpinError:
    """Type, message, the innermost frame in the flow file, and the traceback."""
    from metaflow.exception import MetaflowException

    frames = traceback.extract_tb(exc.__traceback__)
    flow_path = os.path.realpath(flow_file)
    in_flow = [f for f in frames if os.path.realpath(f.filename) == flow_path]
    frame = in_flow[-1] if in_flow else (frames[-1] if frames else None)
    kind = type(exc)
    qual = kind.__qualname__
    if kind.__module__ != "builtins":
        qual = f"{kind.__module__}.{qual}"
    if isinstance(exc, MetaflowException):
        message = exc.message or str(exc)
        line = getattr(exc, "line_no", None)
    else:
        message = str(exc)
        line = None
    return SpinError.of(bound_error({
        "type": qual,
        "message": message,
        "file": frame.filename if frame else flow_file,
        "line": (frame.lineno if frame else line),
        "traceback": "".join(traceback.format_exception(kind, exc, exc.__traceback__)),
    }))


def setup_error(exc: BaseException, req: SpinRequest) -> SpinError:
    """The error of a spin that failed before its step ran (flow import, configs, overrides)."""
    from ..common.errors import DevdError

    error: dict[str, Any]
    if isinstance(exc, SyntaxError):
        error = {"type": "SyntaxError", "message": exc.msg or str(exc),
                 "file": exc.filename or req.flow_file, "line": exc.lineno,
                 "traceback": "".join(traceback.format_exception_only(type(exc), exc))}
    elif isinstance(exc, DevdError):
        error = {"type": "devd.DevdError", "message": str(exc), "file": req.flow_file,
                 "line": None, "traceback": str(exc)}
    elif type(exc).__name__ == "DebugTimeout":  # nobody attached: the step did not run
        error = {"type": "devd.DebugTimeout", "message": str(exc), "file": req.flow_file,
                 "line": None, "traceback": str(exc)}
    elif _is_usage_error(exc):  # Metaflow's CLI refused the Configs given (bad input)
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        error = {"type": "devd.DevdError", "message": message, "file": req.flow_file,
                 "line": None, "traceback": message}
    else:
        return error_info(exc, req.flow_file)
    return SpinError.of(bound_error(error))


def _is_usage_error(exc: BaseException) -> bool:
    from metaflow._vendor.click.exceptions import UsageError

    return isinstance(exc, UsageError)
