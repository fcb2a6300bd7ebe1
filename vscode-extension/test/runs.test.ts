import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { PreviewPanel } from "../src/panel/previewPanel";
import type { ArtifactValueParams, ArtifactValueResult, CardParams, CardResult, SpinOutcome } from "../src/protocol";
import { pinStatus } from "../src/runs/pins";
import { pathspecOf } from "../src/runs/runsTree";
import { recorded, reset } from "./stubs/vscode";

const output = { appendLine: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } as never;
const URI = "file:///p/flow.py";

function spinResult(step: string): SpinOutcome {
  return { ok: true, uri: URI, flow: "F", step, pathspec: null, persisted: false, durationMs: 20, artifacts: [], stdout: "", stderr: "", error: null, nextSteps: [], parents: [], originRunId: null, notices: [], timingsMs: {}, cards: [], recordedTask: null } as SpinOutcome;
}

/** A daemon stand-in: devd/artifactValue answers a page naming the value and the nonce asked with. */
function daemon(answer?: Partial<ArtifactValueResult>) {
  const asked: ArtifactValueParams[] = [];
  const cards: CardParams[] = [];
  return {
    asked,
    cards,
    card: async (_uri: string, params: CardParams): Promise<CardResult> => {
      cards.push(params);
      return { ok: true, step: String(params.step), preview: `<html>${String(params.step)}</html>` };
    },
    artifactValue: async (_uri: string, params: ArtifactValueParams): Promise<ArtifactValueResult> => {
      asked.push(params);
      return { ok: true, html: `<html>${params.name} ${params.webview?.nonce}</html>`, ...answer };
    },
  };
}

describe("runs explorer", () => {
  beforeEach(() => reset());

  it("the status bar says which runs are pinned, nothing when none is", () => {
    assert.equal(pinStatus({}), undefined);
    const one = pinStatus({ [URI]: { flow: "F", runId: "12" } });
    assert.equal(one?.text, "$(pinned) F/12");
    assert.match(one?.tooltip ?? "", /take their parents from F\/12.*Click to unpin/);
    assert.equal(pinStatus({ a: { flow: "F", runId: "1" }, b: { flow: "G", runId: "2" } })?.text, "$(pinned) 2 pinned runs");
  });

  it("copies the pathspec each item stands for", () => {
    assert.equal(pathspecOf({ kind: "run", uri: URI, flow: "F", runId: "3", status: "ok", description: "", tooltip: "" }), "F/3");
    assert.equal(pathspecOf({ kind: "step", uri: URI, flow: "F", runId: "3", step: "train", state: "ok", description: "" }), "F/3/train");
    assert.equal(pathspecOf({ kind: "task", uri: URI, pathspec: "F/3/train/7", state: "ok", label: "", description: "" }), "F/3/train/7");
    assert.equal(pathspecOf({ kind: "artifact", uri: URI, pathspec: "F/3/train/7", name: "model", description: "", tooltip: "" }), "F/3/train/7/model");
    assert.equal(pathspecOf({ kind: "note", text: "x" }), undefined);
  });

  it("an artifact's value is the daemon's page, asked with the pane's nonce; the next spin's page replaces it whole", async () => {
    const source = daemon();
    const pane = new PreviewPanel(source, output);
    assert.equal(await pane.showValue(URI, "F/3/start/1", "frame"), true);
    const panel = recorded.panels[0];
    const nonce = source.asked[0].webview?.nonce ?? "";
    assert.match(nonce, /^[A-Za-z0-9]{16,}$/);
    assert.equal(source.asked[0].webview?.cspSource, "vscode-webview://stub");
    assert.deepEqual(panel.htmlSets, [`<html>frame ${nonce}</html>`]);
    assert.equal(panel.title, "devd: frame");
    await pane.spinFinished(spinResult("train"), "firstSpin");
    assert.deepEqual(panel.posted, [], "not posted into the value's page (it has no script)");
    assert.equal(panel.htmlSets.at(-1), "<html>train</html>");
  });

  it("a value the daemon cannot show says why in the pane, escaped", async () => {
    const pane = new PreviewPanel(daemon({ ok: false, html: null, error: { type: "devd.BadRequest", message: "task F/3/start/1 has no artifact '<b>'" } }), output);
    assert.equal(await pane.showValue(URI, "F/3/start/1", "<b>"), false);
    const html = recorded.panels[0].htmlSets[0];
    assert.match(html, /has no artifact '&lt;b&gt;'/);
    assert.doesNotMatch(html, /<b>/);
  });
});
