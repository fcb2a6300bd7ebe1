import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { page } from "../src/flow/flowPanel";
import { layoutGraph, layoutsComputed } from "../src/flow/layout";
import type { GraphNodeInfo } from "../src/protocol";

/** The value the page's script gives `first` (the graph it came with), read back as JSON. */
function firstOf(html: string): unknown {
  const found = /const first = (.*);\n/.exec(html);
  assert.ok(found, "the page names its first graph");
  return JSON.parse(found[1]);
}

describe("the flow view's page (a new view's graph inside it)", () => {
  it("carries the graph it was made with, read back whole", () => {
    const graph = { type: "graph", uri: "file:///w/flow.py", flow: "F", nodes: [{ step: "start", x: 1, y: 2 }], edges: [] };
    assert.deepEqual(firstOf(page("n0nce", graph)), graph);
  });

  it("a step or file name cannot end or change its script", () => {
    const graph = { type: "graph", flow: "</script><script>alert(1)</script><!--", file: "a\u2028b.py", nodes: [], edges: [] };
    const html = page("n0nce", graph);
    assert.equal(html.split("</script>").length - 1, 1, "one </script>: the page's own");
    assert.ok(!html.includes("<!--") && !html.includes("\u2028"));
    assert.deepEqual(firstOf(html), graph);
  });

  it("without one, the page asks for it (ready, not drawn)", () => {
    const html = page("n0nce");
    assert.equal(firstOf(html), null);
    assert.match(html, /vscode\.postMessage\(\{ type: "ready", drawn: !!first \}\)/);
  });
});

function node(step: string, next: string[], extra: Partial<GraphNodeInfo> = {}): GraphNodeInfo {
  return {
    step, type: "linear", line: 1, next, state: "ok", stale: false, tasks: 1, tasksOk: 1, durationS: 1.5,
    foreach: null, condition: null, cases: {}, lastSpin: null, lastSpinAt: null, ...extra,
  };
}

describe("the layout of a redraw (states changed, not steps)", () => {
  const shape = (extra: Partial<GraphNodeInfo> = {}) => {
    const nodes = [node("start", ["a", "b"], { type: "split" }), node("a", ["join"], extra), node("b", ["join"]), node("join", ["end"], { type: "join" }), node("end", [])];
    return { nodes, edges: nodes.flatMap((n) => n.next.map((to) => ({ from: n.step, to, label: to === "a" ? "case x" : null }))) };
  };

  it("keeps the placement dagre made, with the new states", () => {
    const first = layoutGraph(shape());
    const before = layoutsComputed();
    const again = layoutGraph(shape({ state: "failed", stale: true }));
    assert.equal(layoutsComputed(), before, "not laid out again");
    assert.deepEqual(again.nodes.map((n) => [n.step, n.x, n.y]), first.nodes.map((n) => [n.step, n.x, n.y]));
    assert.deepEqual(again.edges, first.edges);
    assert.equal(again.nodes.find((n) => n.step === "a")?.state, "failed");
    assert.equal(again.nodes.find((n) => n.step === "a")?.stale, true);
  });

  it("lays out anew when a step, an edge or a label changed", () => {
    layoutGraph(shape());
    const before = layoutsComputed();
    const g = shape();
    g.edges = g.edges.map((e) => (e.label ? { ...e, label: "case y" } : e));
    layoutGraph(g);
    const more = shape();
    more.nodes.push(node("extra", []));
    const laid = layoutGraph(more);
    assert.equal(layoutsComputed(), before + 2);
    assert.ok(laid.nodes.some((n) => n.step === "extra"));
  });
});
