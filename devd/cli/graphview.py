"""`devd graph FLOW` and `devd runs FLOW`: the flow's DAG with each step's state in a run,
and the flow's recent runs, in the terminal (text, coloured on a tty) or as JSON.

The project's daemon answers when one runs (``devd/graph``, ``devd/runs``: it also knows
which steps changed since the run and their last spins); else they are read here from
Metaflow's records (devd/core/graph.py). Either way the answer has the protocol's shape
(devd/lsp/models.py), which ``--json`` prints and the text is made from.
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

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


def _targets(node: dict[str, Any]) -> str:
    cases = {step: case for case, step in (node.get("cases") or {}).items()}
    parts = []
    for target in node["next"]:
        text = f"{target} ↺" if target == node["step"] else target  # a recursive step
        if target in cases:
            text += f" (if {node['condition']} == {cases[target]!r})"
        parts.append(text)
    if not parts:
        return ""
    return "→ " + ", ".join(parts) + (f"  [foreach {node['foreach']}]" if node.get("foreach")
                                      else "")


def graph_text(graph: dict[str, Any], colour: bool) -> str:
    """One header line, then one line per step in Metaflow's order."""
    run = graph.get("run")
    where = os.path.relpath(graph["file"]) if graph.get("file") else ""
    nodes = graph["nodes"]
    if run is None:
        head = f"{graph['flow']}  {where}  no run yet: `devd run {where}` records one"
    else:
        status = run["status"]
        done = sum(1 for n in nodes if n["state"] == "ok")
        head = (f"{graph['flow']}  {where}  run {run['runId']} "
                f"{_paint(status, status if status in _COLOURS else 'ok', colour)}"
                f"  {done}/{len(nodes)} steps ok"
                + (f"  {_seconds(run['durationS'])}" if run.get("durationS") is not None
                   else "")
                + (f"  by {run['user']}" if run.get("user") else ""))
    width = max((len(n["step"]) for n in nodes), default=4)
    lines = [head]
    for node in nodes:
        state = node["state"]
        label = state if node["tasks"] <= 1 or state == "not-run" \
            else f"{state} {node['tasksOk']}/{node['tasks']}"
        cells = [_paint(_MARKS.get(state, "?"), state, colour), node["step"].ljust(width),
                 _paint(label.ljust(11), state, colour),
                 _seconds(node.get("durationS")).rjust(8)]
        if node.get("stale"):
            cells.append(_paint("stale", "stale", colour))
        if node.get("lastSpin"):
            cells.append(f"spun: {node['lastSpin']}")
        lines.append("  " + " ".join(cells) + "  " + _targets(node))
    return "\n".join(line.rstrip() for line in lines)


def runs_text(flow: str, runs: list[dict[str, Any]], colour: bool) -> str:
    if not runs:
        return f"{flow}: no run yet (in this namespace)"
    rows = [("RUN", "STATUS", "STARTED", "DURATION", "USER", "TAGS")]
    rows += [(r["runId"], r["status"], _when(r.get("createdAt")), _seconds(r.get("durationS")),
              r.get("user") or "", ",".join(r.get("tags") or [])) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for i, row in enumerate(rows):
        cells = [cell.ljust(widths[j]) for j, cell in enumerate(row)]
        if i and row[1] in _COLOURS:
            cells[1] = _paint(cells[1], row[1], colour)
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _ask_daemon(flow: str, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The running daemon's answer, or None when none runs (never starts one)."""
    from .client import file_uri, refused
    from .daemons import daemon_for

    client = daemon_for(flow)
    if client is None:
        return None
    with client:
        answer: dict[str, Any] = client.request(method, {"uri": file_uri(flow), **params})
    if not answer.get("ok"):
        raise refused(answer, f"{method} failed")
    return answer


def _here(make: Any) -> dict[str, Any]:
    """An answer made in this process, in the protocol's shape."""
    from ..core.metaflowenv import bind_metaflow_root
    from ..lsp.models import shared_converter

    bind_metaflow_root()
    data: dict[str, Any] = shared_converter().unstructure(make())
    return data


def _colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def cmd_graph(args: argparse.Namespace) -> int:
    from ..common.errors import DevdError
    from .wire import dumps

    flow = os.path.abspath(args.flow)
    if not os.path.isfile(flow):
        raise DevdError(f"{args.flow}: no such file; pass the path of your flow's .py file")

    def here() -> Any:
        from ..core.flowmodel import load_flow_model
        from ..core.graph import flow_graph, read_run
        from ..lsp.translate import graph_result

        model = load_flow_model(flow)
        return graph_result(flow_graph(model, read_run(model.flow_name, args.run)))

    data = _ask_daemon(flow, "devd/graph", {"runId": args.run} if args.run else {}) \
        or _here(here)
    print(dumps(data) if args.json else graph_text(data, _colour()))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from ..common.errors import DevdError
    from .wire import dumps

    if args.limit < 1:
        raise DevdError("--limit must be at least 1")
    flow = os.path.abspath(args.flow)
    if not os.path.isfile(flow):
        raise DevdError(f"{args.flow}: no such file; pass the path of your flow's .py file")

    def here() -> Any:
        from ..core.flowmodel import load_flow_model
        from ..core.graph import recent_runs
        from ..lsp.translate import runs_result

        model = load_flow_model(flow)
        return runs_result(model.flow_name, recent_runs(model.flow_name, args.limit))

    data = _ask_daemon(flow, "devd/runs", {"limit": args.limit}) or _here(here)
    print(dumps(data) if args.json else runs_text(data["flow"], data["runs"], _colour()))
    return 0
