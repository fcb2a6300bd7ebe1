/**
 * The flow graph's layout: devd/graph's nodes and edges placed top-down by dagre (the
 * layered layout Kedro-Viz and many DAG views use), computed in the extension host so the
 * webview only draws; a shape laid out before keeps its placement (a redraw changes states,
 * not steps). Pure: unit-tested without VS Code.
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

/** Where dagre put a graph's steps and edges: it depends on the graph's shape only. */
interface Placement {
  width: number;
  height: number;
  nodes: Map<string, { x: number; y: number }>;
  /** By the edge's index in the graph; undefined: not drawn (a step the model lacks). */
  edges: ({ points: { x: number; y: number }[]; labelAt?: { x: number; y: number } } | undefined)[];
}

/** The placements of the last few shapes: a redraw (a spin, a run's end, Show Flow again, a
 * new view on a flow drawn before) changes states, not steps, and dagre takes 20-90 ms on 50
 * steps. */
const placements = new Map<string, Placement>();
const PLACEMENTS_KEPT = 8;
let computed = 0;

/** How many layouts dagre computed (not found placed already): for the unit tests. */
export function layoutsComputed(): number {
  return computed;
}

/** Steps and edges placed for drawing; every edge of the graph, self-loops (recursion) too. */
export function layoutGraph(graph: Pick<GraphResult, "nodes" | "edges">): Layout {
  const key = JSON.stringify([graph.nodes.map((n) => n.step), graph.edges.map((e) => [e.from, e.to, e.label ?? null])]);
  let placed = placements.get(key);
  if (placed) {
    placements.delete(key); // the newest last
  } else {
    placed = place(graph);
    if (placements.size >= PLACEMENTS_KEPT) {
      placements.delete(placements.keys().next().value as string);
    }
  }
  placements.set(key, placed);
  const at = placed.nodes;
  const nodes = graph.nodes.map((node) => ({ ...node, ...(at.get(node.step) as { x: number; y: number }) }));
  const edges: PlacedEdge[] = [];
  graph.edges.forEach((edge, i) => {
    const routed = placed.edges[i];
    if (routed) {
      edges.push({ ...edge, points: routed.points, labelAt: routed.labelAt, selfLoop: edge.from === edge.to });
    }
  });
  return { width: placed.width, height: placed.height, nodes, edges };
}

function place(graph: Pick<GraphResult, "nodes" | "edges">): Placement {
  computed += 1;
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
  const nodes = new Map(graph.nodes.map((node) => {
    const placed = g.node(node.step);
    return [node.step, { x: Math.round(placed.x - NODE_WIDTH / 2), y: Math.round(placed.y - NODE_HEIGHT / 2) }];
  }));
  const edges = graph.edges.map((edge, i) => {
    if (!g.hasEdge(edge.from, edge.to, `e${i}`)) {
      return undefined;
    }
    const routed = g.edge(edge.from, edge.to, `e${i}`) as { points?: { x: number; y: number }[]; x?: number; y?: number };
    return {
      points: (routed.points ?? []).map((p) => ({ x: Math.round(p.x), y: Math.round(p.y) })),
      labelAt: edge.label && routed.x !== undefined && routed.y !== undefined ? { x: Math.round(routed.x), y: Math.round(routed.y) } : undefined,
    };
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
