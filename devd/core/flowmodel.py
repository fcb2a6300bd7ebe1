"""What a flow file declares: steps, their types and lines, lint errors, parameters, configs.

The flow is imported in a child process with Metaflow's own machinery (so module-level
user code never runs in the warm process) and described as plain data here.
"""

from __future__ import annotations

import ast
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..common.errors import DevdError
from ..common.forking import run_in_child


@dataclass(frozen=True)
class StepInfo:
    """One ``@step`` of the flow, as Metaflow's graph sees it."""

    name: str
    type: str  # start, linear, split, foreach, split-switch, join, end
    start_line: int  # 1-based, first decorator line
    def_line: int  # 1-based line of the ``def``
    end_line: int  # 1-based, last line of the body
    in_funcs: tuple[str, ...]
    out_funcs: tuple[str, ...]
    decorators: tuple[str, ...]
    split_parents: tuple[str, ...] = ()
    foreach_param: str | None = None
    doc: str | None = None
    condition: str | None = None  # a switch step's condition artifact
    cases: tuple[tuple[str, str], ...] = ()  # a switch step's (case, next step) pairs


@dataclass(frozen=True)
class LintError:
    """A graph problem Metaflow's linter reports, with its line."""

    line: int | None
    message: str


@dataclass(frozen=True)
class ParameterInfo:
    name: str  # the CLI name
    var: str  # the attribute name in the flow class
    is_config: bool
    default: Any = None


@dataclass
class FlowModel:
    """A flow file, described: the data the engine, the daemon and the editor work from."""

    path: str
    flow_name: str
    steps: dict[str, StepInfo]
    lint_errors: list[LintError] = field(default_factory=list)
    parameters: list[ParameterInfo] = field(default_factory=list)
    start_step: str = "start"
    library_modules: list[str] = field(default_factory=list)
    class_line: int = 1  # 1-based line of the flow's ``class`` statement

    @property
    def step_names(self) -> list[str]:
        return list(self.steps)

    def step(self, name: str) -> StepInfo:
        """The step called ``name``; a clear error listing the steps otherwise."""
        try:
            return self.steps[name]
        except KeyError:
            raise DevdError(
                f"{self.flow_name} has no step '{name}'; its steps are: "
                + ", ".join(self.step_names)
            ) from None

    def step_at_line(self, line: int) -> StepInfo | None:
        """The step whose source (decorators to last body line) holds 1-based ``line``."""
        for info in self.steps.values():
            if info.start_line <= line <= info.end_line:
                return info
        return None

    def ancestors(self, step: str) -> list[str]:
        """Every step upstream of ``step``, nearest first."""
        seen: list[str] = []
        frontier = list(self.steps[step].in_funcs)
        while frontier:
            name = frontier.pop(0)
            if name not in seen and name in self.steps:
                seen.append(name)
                frontier.extend(self.steps[name].in_funcs)
        return seen

    def join_type(self, step: str) -> str | None:
        """'foreach' or 'linear' for a join step (as Metaflow decides it), else None."""
        info = self.steps[step]
        if info.type != "join" or not info.split_parents:
            return None
        return "foreach" if self.steps[info.split_parents[-1]].type == "foreach" else "linear"

    def configs(self) -> list[ParameterInfo]:
        return [p for p in self.parameters if p.is_config]

    def config_files(self, root: str) -> list[str]:
        """Existing files named by Configs' defaults (relative to ``root`` or the flow)."""
        found = []
        for param in self.configs():
            default = param.default
            if isinstance(default, str) and default:
                for base in (root, os.path.dirname(self.path)):
                    candidate = os.path.join(base, default)
                    if os.path.isfile(candidate):
                        found.append(os.path.abspath(candidate))
                        break
        return found


class FlowLoadError(DevdError):
    """The flow file could not be imported or is not a valid flow; carries the line if known."""

    def __init__(self, message: str, path: str, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


_CLASS = "<class>"  # the flow class's own span among its methods' (no method has this name)


def _step_spans(path: str, flow_class_name: str) -> dict[str, tuple[int, int, int]]:
    """(first decorator line, def line, end line) of each method of the flow class, and
    of the class itself under ``_CLASS``."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), filename=path)
    spans: dict[str, tuple[int, int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == flow_class_name:
            spans[_CLASS] = (node.lineno, node.lineno, node.end_lineno or node.lineno)
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    first = min([d.lineno for d in item.decorator_list] + [item.lineno])
                    spans[item.name] = (first, item.lineno, item.end_lineno or item.lineno)
    return spans


def describe_in_this_process(path: str) -> dict[str, Any]:
    """Import the flow and describe it as plain data (runs inside a child)."""
    from metaflow import lint
    from metaflow.exception import MetaflowException

    from ..common.loader import load_flow_class

    before = set(sys.modules)
    try:
        cls = load_flow_class(path)
    except DevdError as exc:
        return {"error": str(exc), "line": None}
    except SyntaxError as exc:
        return {
            "error": f"{path}:{exc.lineno}: SyntaxError: {exc.msg}; fix it and try again",
            "line": exc.lineno,
        }
    except MetaflowException as exc:
        line = getattr(exc, "line_no", None)
        return {"error": f"{path}:{line or '?'}: {exc.headline}: {exc.message}", "line": line}
    except BaseException as exc:  # noqa: BLE001 - user module code failed at import time
        line = _innermost_line_in(path, exc)
        return {
            "error": f"{path}:{line or '?'}: importing the flow failed: "
            f"{type(exc).__name__}: {exc}",
            "line": line,
        }

    graph = cls._graph
    spans = _step_spans(path, cls.__name__)
    steps = {}
    for step_name in graph.sorted_nodes:
        node = graph[step_name]
        line = node.func_lineno
        start, def_line, end = spans.get(node.name, (line, line, line))
        func = getattr(cls, node.name, None)
        steps[node.name] = {
            "name": node.name,
            "type": node.type,
            "start_line": start,
            "def_line": def_line,
            "end_line": end,
            "in_funcs": list(node.in_funcs),
            "out_funcs": list(node.out_funcs),
            "decorators": [d.name for d in node.decorators],
            "split_parents": list(getattr(node, "split_parents", []) or []),
            "foreach_param": node.foreach_param,
            "doc": (getattr(func, "__doc__", None) or "").strip() or None,
            "condition": getattr(node, "condition", None),
            "cases": [[str(k), v] for k, v in (getattr(node, "switch_cases", None) or {}).items()],
        }
    lint_errors = []
    for check in lint.linter._checks:
        try:
            check(graph)
        except lint.LintWarn as warn:
            lint_errors.append({"line": warn.line_no, "message": warn.message})
        except Exception as exc:  # noqa: BLE001 - a checker tripping over a broken graph
            lint_errors.append({"line": None, "message": str(exc)})
    params = []
    for var, param in cls._get_parameters():
        declared = {**getattr(param, "_override_kwargs", {}), **getattr(param, "kwargs", {})}
        default = declared.get("default")
        if callable(default) or not _plain(default):
            default = None
        params.append(
            {
                "name": param.name,
                "var": var,
                "is_config": bool(getattr(param, "IS_CONFIG_PARAMETER", False)),
                "default": default,
            }
        )
    return {
        "library_modules": _library_modules(set(sys.modules) - before, path),
        "flow_name": cls.__name__,
        "steps": steps,
        "lint_errors": lint_errors,
        "parameters": params,
        "start_step": graph.start_step if hasattr(graph, "start_step") else "start",
        "class_line": spans.get(_CLASS, (1, 1, 1))[1],
    }


def _library_modules(names: set[str], path: str) -> list[str]:
    """Top-level library packages the flow imported (numpy, pandas, ...), to preload."""
    from ..common.loader import is_user_module

    found = set()
    for name in names:
        top = name.split(".")[0]
        module = sys.modules.get(top)
        if module is None or top in ("metaflow", "devd", "__main__") or top.startswith("_"):
            continue
        # The user's own code (a helper folder, an editable install) is never preloaded:
        # the warm process would keep it, and every child would inherit the old version.
        if getattr(module, "__file__", None) and not is_user_module(module):
            found.add(top)
    return sorted(found)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict | tuple)


def _innermost_line_in(path: str, exc: BaseException) -> int | None:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == os.path.abspath(path):
            line = frame.lineno
    return line


def load_flow_model(path: str) -> FlowModel:
    """Describe the flow at ``path``; raise a one-line error for anything that is not one."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise DevdError(f"{path}: no such file; pass the path of your flow's .py file")
    if not os.path.isfile(path):
        raise DevdError(f"{path}: is a directory; pass the path of your flow's .py file")
    outcome = run_in_child(describe_in_this_process, path)
    if outcome.crashed:
        raise FlowLoadError(
            f"{path}: loading the flow crashed: {outcome.crashed.strip().splitlines()[-1]}", path
        )
    data = outcome.value
    if "error" in data:
        raise FlowLoadError(data["error"], path, data.get("line"))
    steps = {
        name: StepInfo(
            name=s["name"],
            type=s["type"],
            start_line=s["start_line"],
            def_line=s["def_line"],
            end_line=s["end_line"],
            in_funcs=tuple(s["in_funcs"]),
            out_funcs=tuple(s["out_funcs"]),
            decorators=tuple(s["decorators"]),
            split_parents=tuple(s["split_parents"]),
            foreach_param=s["foreach_param"],
            doc=s["doc"],
            condition=s.get("condition"),
            cases=tuple((k, v) for k, v in s.get("cases", [])),
        )
        for name, s in data["steps"].items()
    }
    return FlowModel(
        path=path,
        flow_name=data["flow_name"],
        steps=steps,
        lint_errors=[LintError(e["line"], e["message"]) for e in data["lint_errors"]],
        parameters=[ParameterInfo(**p) for p in data["parameters"]],
        start_step=data["start_step"],
        library_modules=list(data.get("library_modules", [])),
        class_line=int(data.get("class_line", 1)),
    )
