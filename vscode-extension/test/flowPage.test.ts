import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { page } from "../src/flow/flowPanel";

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
