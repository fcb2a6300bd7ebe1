/**
 * The flow graph's layout: devd/graph's nodes and edges placed top-down by dagre (the
 * layered layout Kedro-Viz and many DAG views use), computed in the extension host so the
 * webview only draws. Pure: unit-tested without VS Code.
 */
import dagre from "@dagrejs/dagre";

import type { GraphEdge, GraphNodeInfo, GraphResult } from "../protocol";

export const NODE_WIDTH = 216; // room for a node's five buttons
export const NODE_HEIGHT = 74;

export interface PlacedNode extends GraphNodeInfo {
  /** Top-left corner. */
  x: number;
  y: number;
}

export interface PlacedEdge extends GraphEdge {
  /** The polyline dagre routed, from the source's border to the target's. */
  points: { x: number; y: number }[];
  /** Where the label (a switch case, a foreach's variable) goes, if any. */
  labelAt?: { x: number; y: number };
  selfLoop: boolean;
}

export interface Layout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
}

/** Steps and edges placed for drawing; every edge of the graph, self-loops (recursion) too. */
export function layoutGraph(graph: Pick<GraphResult, "nodes" | "edges">): Layout {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "TB", nodesep: 36, ranksep: 56, edgesep: 16, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of graph.nodes) {
    g.setNode(node.step, { width: NODE_WIDTH, height: NODE_HEIGHT });
  }
  graph.edges.forEach((edge, i) => {
    if (!g.hasNode(edge.from) || !g.hasNode(edge.to)) {
      return; // an edge to a step the model does not have: the linter says so, not the picture
    }
    const label = edge.label ? { width: Math.min(8 * edge.label.length + 12, 180), height: 18, labelpos: "c" } : {};
    g.setEdge(edge.from, edge.to, label, `e${i}`);
  });
  dagre.layout(g);
  const nodes = graph.nodes.map((node) => {
    const placed = g.node(node.step);
    return { ...node, x: Math.round(placed.x - NODE_WIDTH / 2), y: Math.round(placed.y - NODE_HEIGHT / 2) };
  });
  const edges: PlacedEdge[] = [];
  graph.edges.forEach((edge, i) => {
    if (!g.hasEdge(edge.from, edge.to, `e${i}`)) {
      return;
    }
    const routed = g.edge(edge.from, edge.to, `e${i}`) as { points?: { x: number; y: number }[]; x?: number; y?: number };
    edges.push({
      ...edge,
      points: (routed.points ?? []).map((p) => ({ x: Math.round(p.x), y: Math.round(p.y) })),
      labelAt: edge.label && routed.x !== undefined && routed.y !== undefined ? { x: Math.round(routed.x), y: Math.round(routed.y) } : undefined,
      selfLoop: edge.from === edge.to,
    });
  });
  const size = g.graph();
  return { width: Math.ceil(size.width ?? 0), height: Math.ceil(size.height ?? 0), nodes, edges };
}

/** The one-line status of a node (drawn, or live from devd/runProgress): `ok 6/6 · 3.4 s`,
 * `failed`, `not run`. */
export function nodeSummary(node: Pick<GraphNodeInfo, "state" | "tasks" | "tasksOk" | "durationS">): string {
  const state = node.state === "not-run" ? "not run" : node.state;
  const counts = node.tasks > 1 ? ` ${node.tasksOk}/${node.tasks}` : "";
  const took = node.durationS !== null && node.durationS !== undefined ? ` · ${formatSeconds(node.durationS)}` : "";
  return `${state}${counts}${took}`;
}

export function formatSeconds(s: number): string {
  if (s < 1) {
    return `${Math.round(s * 1000)} ms`;
  }
  return s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`;
}
