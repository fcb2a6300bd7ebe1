"""`devd graph FLOW` and `devd runs FLOW`: the flow's DAG with each step's state in a run,
and the flow's recent runs, in the terminal (text, coloured on a tty) or as JSON.

Both read Metaflow's records directly (devd/core/graph.py); no daemon is needed.
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from ..core.graph import FlowGraph, GraphNode, RunRecord

_MARKS = {"ok": "✓", "failed": "✗", "running": "…", "not-run": "·"}
_COLOURS = {"ok": "32", "failed": "31", "running": "33", "not-run": "2", "stale": "35"}


def add_parsers(sub: Any, want: Any) -> None:
    """Register ``graph`` and ``runs`` on the CLI's subparsers."""
    if want("graph"):
        graph = sub.add_parser(
            "graph", help="the flow's steps as a graph, with their state in a run",
            description="Print FLOW's DAG as Metaflow defines it (branches, foreaches, switch "
            "cases, recursion), each step with its state in the newest run (or --run): ok, "
            "failed, running or not-run, task counts and duration.")
        graph.add_argument("flow", metavar="FLOW", help="the flow's .py file")
        graph.add_argument("--run", metavar="RUN_ID", help="this run instead of the newest")
        graph.add_argument("--json", action="store_true", help="print one JSON object")
    if want("runs"):
        runs = sub.add_parser("runs", help="the flow's recent runs, newest first")
        runs.add_argument("flow", metavar="FLOW", help="the flow's .py file")
        runs.add_argument("--limit", type=int, default=20, metavar="N",
                          help="at most N runs (default 20)")
        runs.add_argument("--json", action="store_true", help="print one JSON object")


def _paint(text: str, what: str, colour: bool) -> str:
    return f"\033[{_COLOURS[what]}m{text}\033[0m" if colour else text


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def run_json(run: RunRecord) -> dict[str, Any]:
    return {"runId": run.run_id, "status": run.status, "createdAt": run.created,
            "finishedAt": run.finished, "durationS": run.duration_s, "user": run.user,
            "tags": list(run.tags)}


def node_json(node: GraphNode) -> dict[str, Any]:
    return {"step": node.step, "type": node.type, "line": node.line, "next": list(node.next),
            "state": node.state, "stale": node.stale, "tasks": node.tasks,
            "tasksOk": node.tasks_ok, "durationS": node.duration_s, "foreach": node.foreach,
            "condition": node.condition, "cases": node.cases, "lastSpin": node.last_spin,
            "lastSpinAt": node.last_spin_at}


def graph_json(graph: FlowGraph) -> dict[str, Any]:
    return {"flow": graph.flow, "file": graph.file,
            "run": run_json(graph.run) if graph.run is not None else None,
            "nodes": [node_json(n) for n in graph.nodes],
            "edges": [{"from": a, "to": b, "label": label} for a, b, label in graph.edges]}


def _targets(node: GraphNode) -> str:
    cases = {step: case for case, step in node.cases.items()}
    parts = []
    for target in node.next:
        text = f"{target} ↺" if target == node.step else target  # a recursive step
        if target in cases:
            text += f" (if {node.condition} == {cases[target]!r})"
        parts.append(text)
    if not parts:
        return ""
    return "→ " + ", ".join(parts) + (f"  [foreach {node.foreach}]" if node.foreach else "")


def graph_text(graph: FlowGraph, colour: bool) -> str:
    """One header line, then one line per step in Metaflow's order."""
    run = graph.run
    where = os.path.relpath(graph.file) if graph.file else ""
    if run is None:
        head = f"{graph.flow}  {where}  no run yet: `devd run {where}` records one"
    else:
        done = sum(1 for n in graph.nodes if n.state == "ok")
        head = (f"{graph.flow}  {where}  run {run.run_id} "
                f"{_paint(run.status, run.status if run.status in _COLOURS else 'ok', colour)}"
                f"  {done}/{len(graph.nodes)} steps ok"
                + (f"  {_seconds(run.duration_s)}" if run.duration_s is not None else "")
                + (f"  by {run.user}" if run.user else ""))
    width = max((len(n.step) for n in graph.nodes), default=4)
    lines = [head]
    for node in graph.nodes:
        state = node.state
        label = state if node.tasks <= 1 or state == "not-run" \
            else f"{state} {node.tasks_ok}/{node.tasks}"
        cells = [_paint(_MARKS[state], state, colour), node.step.ljust(width),
                 _paint(label.ljust(11), state, colour), _seconds(node.duration_s).rjust(8)]
        if node.stale:
            cells.append(_paint("stale", "stale", colour))
        if node.last_spin:
            cells.append(f"spun: {node.last_spin}")
        lines.append("  " + " ".join(cells) + "  " + _targets(node))
    return "\n".join(line.rstrip() for line in lines)


def runs_text(flow: str, runs: list[RunRecord], colour: bool) -> str:
    if not runs:
        return f"{flow}: no run yet (in this namespace)"
    rows = [("RUN", "STATUS", "STARTED", "DURATION", "USER", "TAGS")]
    rows += [(r.run_id, r.status, _when(r.created), _seconds(r.duration_s), r.user or "",
              ",".join(r.tags)) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for i, row in enumerate(rows):
        cells = [cell.ljust(widths[j]) for j, cell in enumerate(row)]
        if i and row[1] in _COLOURS:
            cells[1] = _paint(cells[1], row[1], colour)
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _model(flow: str) -> Any:
    from ..core.flowmodel import load_flow_model
    from ..core.metaflowenv import bind_metaflow_root

    bind_metaflow_root()
    return load_flow_model(flow)


def cmd_graph(args: argparse.Namespace) -> int:
    from ..core.graph import flow_graph, read_run
    from .wire import dumps

    model = _model(args.flow)
    graph = flow_graph(model, read_run(model.flow_name, args.run))
    if args.json:
        print(dumps(graph_json(graph)))
    else:
        print(graph_text(graph, sys.stdout.isatty() and "NO_COLOR" not in os.environ))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from ..core.graph import recent_runs
    from .wire import dumps

    if args.limit < 1:
        from ..common.errors import DevdError

        raise DevdError("--limit must be at least 1")
    model = _model(args.flow)
    runs = recent_runs(model.flow_name, args.limit)
    if args.json:
        print(dumps({"flow": model.flow_name, "runs": [run_json(r) for r in runs]}))
    else:
        print(runs_text(model.flow_name, runs,
                        sys.stdout.isatty() and "NO_COLOR" not in os.environ))
    return 0
