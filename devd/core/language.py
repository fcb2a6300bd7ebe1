"""Editor features computed from a flow model and the engine's warm state.

Pure source analysis, part of the core (no protocol types, no pygls): devd/lsp/features.py
turns their plain data into LSP messages. Lines here are 0-based, as in LSP.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from ..common.summary import short_repr, summarize, type_name
from .flowmodel import FlowModel

_SELF_ATTR = re.compile(r"self\.([A-Za-z_][A-Za-z0-9_]*)$")
_IDENT = re.compile(r"[A-Za-z0-9_]")


@dataclass(frozen=True)
class Lens:
    line: int
    title: str
    command: str
    arguments: list[Any]


def code_lenses(model: FlowModel, uri: str) -> list[Lens]:
    """'Show flow' (the graph view) on the flow's class, 'Spin' and 'Debug' on every step,
    'Run' on the start step, 'Resume from here' on the others."""
    lenses = [Lens(model.class_line - 1, "Show flow", "devd.showFlow", [uri])]
    for info in model.steps.values():
        line = info.start_line - 1
        lenses.append(Lens(line, "▶ Spin", "devd.spin", [uri, info.name]))
        lenses.append(Lens(line, "Debug", "devd.debug", [uri, info.name]))
        if info.name == model.start_step:
            lenses.append(Lens(line, "Run flow", "devd.run", [uri]))
        else:
            lenses.append(Lens(line, "Resume from here", "devd.resume", [uri, info.name]))
    return lenses


def self_attribute_at(text: str, line: int, character: int) -> str | None:
    """The ``name`` of ``self.name`` under the cursor, if any."""
    lines = text.splitlines()
    if line >= len(lines):
        return None
    row = lines[line]
    start = character
    while start > 0 and _IDENT.match(row[start - 1]):
        start -= 1
    end = character
    while end < len(row) and _IDENT.match(row[end]):
        end += 1
    if start == end or not row[:start].endswith("self."):
        return None
    return row[start:end]


def completing_self(text: str, line: int, character: int) -> str | None:
    """The prefix typed after ``self.`` at the cursor ('' right after the dot), or None."""
    lines = text.splitlines()
    if line >= len(lines):
        return "" if text.endswith("self.") else None
    before = lines[line][:character]
    match = re.search(r"self\.([A-Za-z0-9_]*)$", before)
    return match.group(1) if match else None


def assigned_names(source: str, flow_class: str) -> dict[str, set[str]]:
    """``self.X = ...`` targets of each method of the flow class (static, no run needed)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    names: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == flow_class:
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found: set[str] = set()
                    for sub in ast.walk(item):
                        targets: list[ast.AST] = []
                        if isinstance(sub, ast.Assign):
                            targets = list(sub.targets)
                        elif isinstance(sub, ast.AugAssign | ast.AnnAssign):
                            targets = [sub.target]
                        for target in targets:
                            for t in ast.walk(target):
                                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) \
                                        and t.value.id == "self":
                                    found.add(t.attr)
                    names[item.name] = found
    return names


@dataclass(frozen=True)
class _StepShape:
    """What a step's own source says about the names ``self`` holds in it: whether it is a
    join (``def join(self, inputs)``), and what its ``merge_artifacts`` call lets through
    (None: no call; else ``(include or None, exclude)``, literal lists only)."""

    joins: bool
    merge: tuple[frozenset[str] | None, frozenset[str]] | None


def _literal_names(node: ast.expr | None) -> frozenset[str] | None:
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return frozenset(e.value for e in node.elts
                         if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return None


def step_shapes(source: str, flow_class: str) -> dict[str, _StepShape]:
    """Each method of the flow class: a join or not, and its merge_artifacts filter."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    shapes: dict[str, _StepShape] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == flow_class):
            continue
        for item in node.body:
            if not isinstance(item, ast.FunctionDef):
                continue
            merge = None
            for sub in ast.walk(item):
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and \
                        sub.func.attr == "merge_artifacts":
                    kw = {k.arg: k.value for k in sub.keywords}
                    merge = (_literal_names(kw.get("include")),
                             _literal_names(kw.get("exclude")) or frozenset())
            shapes[item.name] = _StepShape(len(item.args.args) >= 2, merge)
    return shapes


def available_names(model: FlowModel, source: str, step: str,
                    warm_names: set[str]) -> dict[str, str]:
    """Artifact names ``self`` holds in ``step``, with where each comes from: what flows
    in from the parents (a join gets only what its merge_artifacts lets through; branch
    artifacts are ``inputs.<branch>.<name>`` there), Parameters and Configs, what the step
    sets. ``warm_names``: the warm parents' artifacts (a join's parents are its branches)."""
    assigned = assigned_names(source, model.flow_name)
    shapes = step_shapes(source, model.flow_name)
    memo: dict[str, dict[str, str]] = {}

    def is_join(name: str) -> bool:
        shape = shapes.get(name)
        return model.steps[name].type == "join" or (shape is not None and shape.joins)

    def merged(name: str, names: dict[str, str]) -> dict[str, str]:
        shape = shapes.get(name)
        if shape is None or shape.merge is None:
            return {}
        include, exclude = shape.merge
        return {n: o for n, o in names.items()
                if n not in exclude and (include is None or n in include)}

    def incoming(name: str) -> dict[str, str]:
        pooled: dict[str, str] = {}
        for parent in model.steps[name].in_funcs:
            if parent in model.steps:
                for n, origin in outgoing(parent).items():
                    pooled.setdefault(n, origin)
        return merged(name, pooled) if is_join(name) else pooled

    def outgoing(name: str) -> dict[str, str]:
        if name not in memo:
            memo[name] = {}  # a cycle (a malformed graph) ends here
            out = incoming(name)
            for n in sorted(assigned.get(name, ())):
                out[n] = f"set in step '{name}'"
            memo[name] = out
        return memo[name]

    found: dict[str, str] = {}
    flowing = incoming(step)
    warm = {n for n in warm_names if not n.startswith("_")}
    if is_join(step):
        warm = set(merged(step, dict.fromkeys(warm, ""))) if warm else set()
    for name in sorted(warm):
        found[name] = "warm parent artifact"
    for name, origin in flowing.items():
        found.setdefault(name, origin)
    for param in model.parameters:
        found.setdefault(param.var, "Config" if param.is_config else "Parameter")
    for name in sorted(assigned.get(step, ())):
        found.setdefault(name, f"set in this step '{step}'")
    parents = model.steps[step].in_funcs
    if len(parents) == 1 and model.steps[parents[0]].type == "foreach":
        found.setdefault("input", "foreach input")
    return found


_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def step_for_completion(model: FlowModel, text: str, line: int) -> str | None:
    """The step whose body holds 0-based ``line`` of the editor's (maybe unsaved) ``text``:
    the nearest ``def`` above at a smaller indentation, if it is a step. The saved file's
    model does not know a line typed after a step's last one."""
    lines = text.splitlines()
    if line >= len(lines):
        lines += [""] * (line - len(lines) + 1)
    row = lines[line]
    indent = len(row) - len(row.lstrip()) if row.strip() else None
    for i in range(line, -1, -1):
        found = _DEF.match(lines[i])
        if found and i != line:
            depth = len(found.group(1))
            if indent is None or indent > depth:
                name = found.group(2)
                return name if name in model.steps else None
            continue
        here = lines[i]
        if i != line and here.strip() and not here.lstrip().startswith(("#", "@")):
            depth = len(here) - len(here.lstrip())
            if indent is not None and depth < indent and depth == 0:
                return None  # a top-level statement between: outside the class
            if indent is None:
                indent = depth  # a blank cursor line takes the indentation of the code above
    return None


def completion_source(text: str, line: int) -> str:
    """``text`` with the line being typed (``self.`` and a prefix: a syntax error) made
    neutral, so the rest of the step's assignments still parse."""
    lines = text.splitlines()
    if line < len(lines):
        row = lines[line]
        lines[line] = row[:len(row) - len(row.lstrip())] + "pass"
    return "\n".join(lines) + "\n"


def describe_value(name: str, value: Any, origin: str) -> str:
    """Markdown for a hover: type, shape or length, a short repr, and the task it came from."""
    return (f"**self.{name}**: `{type_name(value)}` — {summarize(value)}\n\n"
            f"```\n{short_repr(value, 200)}\n```\n\nfrom {origin}")
