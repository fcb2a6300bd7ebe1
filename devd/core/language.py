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
    """'Spin' and 'Debug' on every step, 'Run' on the start step, 'Resume from here' on
    the others."""
    lenses = []
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


def available_names(model: FlowModel, source: str, step: str,
                    warm_names: set[str]) -> dict[str, str]:
    """Artifact names a step can read, with where each comes from."""
    assigned = assigned_names(source, model.flow_name)
    found: dict[str, str] = {}
    for name in sorted(warm_names):
        if not name.startswith("_"):
            found[name] = "warm parent artifact"
    for up in model.ancestors(step):
        for name in sorted(assigned.get(up, ())):
            found.setdefault(name, f"set in step '{up}'")
    for param in model.parameters:
        found.setdefault(param.var, "Config" if param.is_config else "Parameter")
    for name in sorted(assigned.get(step, ())):
        found.setdefault(name, f"set in this step '{step}'")
    parents = model.steps[step].in_funcs
    if len(parents) == 1 and model.steps[parents[0]].type == "foreach":
        found.setdefault("input", "foreach input")
    return found


def describe_value(name: str, value: Any, origin: str) -> str:
    """Markdown for a hover: type, shape or length, a short repr, and the task it came from."""
    return (f"**self.{name}**: `{type_name(value)}` — {summarize(value)}\n\n"
            f"```\n{short_repr(value, 200)}\n```\n\nfrom {origin}")
