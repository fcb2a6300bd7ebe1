import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { splitChoices } from "../src/commands/splitPick";
import { splitSteps } from "../src/flow/flowPanel";
import { layoutGraph, NODE_HEIGHT, NODE_WIDTH, nodeSummary } from "../src/flow/layout";
import type { GraphEdge, GraphNodeInfo, TaskInfo } from "../src/protocol";

function node(step: string, next: string[], extra: Partial<GraphNodeInfo> = {}): GraphNodeInfo {
  return {
    step, type: "linear", line: 1, next, state: "ok", stale: false, tasks: 1, tasksOk: 1, durationS: 1.5,
    foreach: null, condition: null, cases: {}, lastSpin: null, lastSpinAt: null, ...extra,
  };
}

function edges(nodes: GraphNodeInfo[], labels: Record<string, string> = {}): GraphEdge[] {
  return nodes.flatMap((n) => n.next.map((to) => ({ from: n.step, to, label: labels[`${n.step}>${to}`] ?? null })));
}

function overlap(a: { x: number; y: number }, b: { x: number; y: number }): boolean {
  return Math.abs(a.x - b.x) < NODE_WIDTH && Math.abs(a.y - b.y) < NODE_HEIGHT;
}

describe("the flow graph's layout (dagre, top-down)", () => {
  it("a branch and join: the start above its branches, the branches side by side, the join below", () => {
    const nodes = [node("start", ["a", "b", "c"], { type: "split" }), node("a", ["join"]), node("b", ["join"]), node("c", ["join"]),
      node("join", ["end"], { type: "join" }), node("end", [], { type: "end" })];
    const laid = layoutGraph({ nodes, edges: edges(nodes) });
    const at = Object.fromEntries(laid.nodes.map((n) => [n.step, n]));
    assert.ok(at.start.y < at.a.y && at.a.y === at.b.y && at.b.y === at.c.y && at.join.y > at.a.y && at.end.y > at.join.y);
    for (const [i, x] of laid.nodes.entries()) {
      for (const y of laid.nodes.slice(i + 1)) {
        assert.ok(!overlap(x, y), `${x.step} overlaps ${y.step}`);
      }
    }
    assert.equal(laid.edges.length, 7);
    assert.ok(laid.edges.every((e) => e.points.length >= 2));
    assert.ok(laid.width >= 3 * NODE_WIDTH && laid.height >= 4 * NODE_HEIGHT);
  });

  it("a switch keeps its cases as edge labels, a recursive step its self-loop", () => {
    const nodes = [node("start", ["quick", "careful"], { type: "split-switch", condition: "mode", cases: { fast: "quick", slow: "careful" } }),
      node("quick", ["again"]), node("careful", ["again"], { state: "not-run", tasks: 0, tasksOk: 0, durationS: null }),
      node("again", ["again", "end"], { type: "split-switch", condition: "state", cases: { more: "again", done: "end" }, tasks: 3, tasksOk: 3 }),
      node("end", [], { type: "end" })];
    const laid = layoutGraph({ nodes, edges: edges(nodes, { "start>quick": "fast", "start>careful": "slow", "again>again": "more", "again>end": "done" }) });
    const loop = laid.edges.find((e) => e.from === "again" && e.to === "again");
    assert.ok(loop?.selfLoop && loop.label === "more");
    const fast = laid.edges.find((e) => e.to === "quick");
    assert.ok(fast?.labelAt, "a labelled edge has a label position");
    assert.equal(laid.nodes.length, 5);
  });

  it("a nested foreach: each level below the one that fans it out, its variable on the edge", () => {
    const nodes = [node("start", ["outer"], { type: "foreach", foreach: "rows" }), node("outer", ["inner"], { type: "foreach", foreach: "cols", tasks: 2, tasksOk: 2 }),
      node("inner", ["join_inner"], { tasks: 6, tasksOk: 5, state: "failed" }), node("join_inner", ["join_outer"], { type: "join", tasks: 2, tasksOk: 1 }),
      node("join_outer", ["end"], { type: "join", state: "not-run", tasks: 0, tasksOk: 0 }), node("end", [], { type: "end", state: "not-run", tasks: 0, tasksOk: 0 })];
    const laid = layoutGraph({ nodes, edges: edges(nodes, { "start>outer": "foreach rows", "outer>inner": "foreach cols" }) });
    const order = ["start", "outer", "inner", "join_inner", "join_outer", "end"];
    const at = Object.fromEntries(laid.nodes.map((n) => [n.step, n]));
    assert.ok(order.every((s, i) => i === 0 || at[s].y > at[order[i - 1]].y), "each level below the last");
    assert.deepEqual(laid.edges.filter((e) => e.label).map((e) => [e.from, e.label]), [["start", "foreach rows"], ["outer", "foreach cols"]]);
    assert.ok(laid.edges.filter((e) => e.label).every((e) => e.labelAt));
    assert.equal(nodeSummary(at.inner), "failed 5/6 · 1.5 s");
  });

  it("a 60-step flow lays out in well under a second, every step placed", () => {
    const nodes = Array.from({ length: 60 }, (_, i) => node(`s${i}`, i < 59 ? [`s${i + 1}`] : []));
    const started = Date.now();
    const laid = layoutGraph({ nodes, edges: edges(nodes) });
    assert.equal(laid.nodes.length, 60);
    assert.ok(Date.now() - started < 5000);
    assert.ok(laid.nodes.every((n, i) => i === 0 || n.y > laid.nodes[i - 1].y));
  });

  it("an edge to a step the graph lacks is left out, not drawn to nowhere", () => {
    const nodes = [node("start", ["gone"]), node("end", [])];
    assert.equal(layoutGraph({ nodes, edges: edges(nodes) }).edges.length, 0);
  });

  it("a node's summary: state, task counts for many tasks, duration", () => {
    assert.equal(nodeSummary(node("a", [], { tasks: 6, tasksOk: 6, durationS: 3.42 })), "ok 6/6 · 3.4 s");
    assert.equal(nodeSummary(node("a", [], { state: "not-run", tasks: 0, tasksOk: 0, durationS: null })), "not run");
    assert.equal(nodeSummary(node("a", [], { state: "failed", durationS: 0.25 })), "failed · 250 ms");
  });
});

describe("the foreach split picker's rows and which nodes offer it", () => {
  const task = (index: number | null, input: string | null, id: string, state = "ok"): TaskInfo => ({ pathspec: `F/7/body/${id}`, taskId: id, state, index, input, durationS: 0.5 });

  it("a run's tasks: one row per split, its input the description (typing a value narrows), spun as the task", () => {
    const rows = splitChoices([task(1, "'b'", "12"), task(0, "'a'", "11", "failed")]);
    assert.deepEqual(rows.map((r) => [r.label, r.description, r.pathspec]), [["split 1", "input 'b'", "F/7/body/12"], ["split 0", "input 'a'", "F/7/body/11"]]);
    assert.match(rows[1].detail ?? "", /failed/);
  });
  it("a nested foreach's inner splits repeat an index: each row names its task", () => {
    const rows = splitChoices([task(0, "1", "20"), task(0, "1", "21")]);
    assert.deepEqual(rows.map((r) => r.label), ["split 0 (task 20)", "split 0 (task 21)"]);
  });
  it("without a run's tasks: the indices the last spin saw, but the one it took", () => {
    assert.deepEqual(splitChoices(undefined, 3, 1).map((r) => [r.label, r.index]), [["split 0 of 3", 0], ["split 2 of 3", 2]]);
    assert.deepEqual(splitChoices([task(null, null, "3")], undefined), []); // not in a foreach: nothing to pick
  });
  it("the nodes with splits: a foreach's body, and any step a run gave several tasks", () => {
    const nodes = [node("start", ["fan"]), node("fan", ["body"], { type: "foreach" }), node("body", ["inner"]), node("inner", ["join"], { tasks: 6 }), node("join", ["end"])];
    assert.deepEqual([...splitSteps(nodes)].sort(), ["body", "inner"]);
  });
});
