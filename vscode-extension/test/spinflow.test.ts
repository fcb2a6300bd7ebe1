/** Issue 19: one spin per action, a spin in flight shown, Cancel as its own outcome. */
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { runEnd } from "../src/commands/outcome";
import { PreviewPanel } from "../src/panel/previewPanel";
import { paneAction, paneOnSpinStart, parsePageMessage, spinEnd } from "../src/panel/policy";
import type { CardParams, CardResult, SpinOutcome } from "../src/protocol";
import { formatStatus } from "../src/statusbar/format";
import { recorded, reset } from "./stubs/vscode";

function result(over: Partial<SpinOutcome> = {}): SpinOutcome {
  return { ok: true, uri: "file:///p/flow.py", flow: "F", step: "train", pathspec: null, persisted: false, durationMs: 20, artifacts: [], stdout: "", stderr: "", error: null, nextSteps: [], parents: [], originRunId: null, notices: [], timingsMs: {}, cards: [], recordedTask: null, ...over };
}
const cancelledError = { type: "devd.Cancelled", message: "spin of 'train' cancelled" };

describe("how a spin ended", () => {
  it("superseded, cancelled, failed, refused and ok are told apart", () => {
    assert.equal(spinEnd(result()), "ok");
    assert.equal(spinEnd(result({ ok: false, cancelled: "superseded", error: cancelledError })), "superseded");
    assert.equal(spinEnd(result({ ok: false, cancelled: "user", error: cancelledError })), "cancelled");
    assert.equal(spinEnd(result({ ok: false, error: { type: "ZeroDivisionError", message: "division by zero" } })), "failed");
    assert.equal(spinEnd(result({ ok: false, step: null, error: { type: "devd.BadRequest", message: "x" } })), "refused");
  });
  it("a cancelled spin is not a failure in the status bar", () => {
    const view = formatStatus({ daemon: "ready", lastSpin: { step: "slow", ok: false, durationMs: 900, cancelled: true } });
    assert.equal(view.text, "$(circle-slash) devd: slow cancelled");
    assert.equal(view.severity, "normal");
  });
  it("a spin in flight says `spinning <step>`", () => {
    const view = formatStatus({ daemon: "ready", running: "spinning slow", lastSpin: { step: "train", ok: true, durationMs: 9 } });
    assert.match(view.text, /spinning slow/);
  });
  it("a cancelled or superseded spin leaves the pane alone", () => {
    assert.equal(paneAction(result({ ok: false, cancelled: "user", error: cancelledError }), "everySpin", true, true), "ignore");
    assert.equal(paneAction(result({ ok: false, cancelled: "superseded", error: cancelledError }), "everySpin", true, true), "ignore");
  });
  it("a run stopped by Cancel is cancelled, not failed with exit code -9", () => {
    assert.equal(runEnd({ ok: false, runId: "12", returncode: -9, cancelled: true }), "cancelled");
    assert.equal(runEnd({ ok: false, runId: "12", returncode: 1 }), "failed");
    assert.equal(runEnd({ ok: true, runId: "12", returncode: 0 }), "ok");
  });
});

describe("a spin in flight in the pane", () => {
  beforeEach(() => reset());

  it("opens a closed pane unless the user said never", () => {
    assert.equal(paneOnSpinStart("firstSpin", false), "open");
    assert.equal(paneOnSpinStart("everySpin", false), "open");
    assert.equal(paneOnSpinStart("never", false), "ignore");
    assert.equal(paneOnSpinStart("never", true), "update");
  });
  it("the pane's buttons post actions; a step name is checked", () => {
    assert.deepEqual(parsePageMessage({ type: "devd/action", action: "cancel" }), { type: "action", action: "cancel", step: undefined });
    assert.deepEqual(parsePageMessage({ type: "devd/action", action: "resume", step: "train" }), { type: "action", action: "resume", step: "train" });
    assert.deepEqual(parsePageMessage({ type: "devd/action", action: "resume", step: "x; rm -rf" }), { type: "action", action: "resume", step: undefined });
    assert.deepEqual(parsePageMessage({ type: "devd/action", action: "format-disk" }), { type: "unknown" });
  });
  it("a started spin opens the pane titled `devd: <step>` with a Cancel button, which cancels that step", async () => {
    const cancelled: string[] = [];
    const daemon = {
      card: async (_uri: string, params: CardParams): Promise<CardResult> => ({ ok: true, step: String(params.step), preview: `<html>${String(params.step)}</html>` }),
      cancel: async (_uri: string, step: string) => {
        cancelled.push(step);
      },
    };
    const pane = new PreviewPanel(daemon, { appendLine: () => undefined } as never);
    pane.spinStarted("file:///p/flow.py", "slow", "firstSpin");
    assert.equal(recorded.panels.length, 1);
    const panel = recorded.panels[0];
    assert.equal(panel.title, "devd: slow");
    assert.match(panel.htmlSets[0], /data-action="cancel"[^>]*>Cancel</);
    assert.match(panel.htmlSets[0], /spinning <code>slow<\/code>/);
    panel.receive({ type: "devd/action", action: "cancel" });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(cancelled, ["slow"]);
    await pane.spinFinished(result({ step: "slow", ok: false, cancelled: "user", error: cancelledError }), "firstSpin");
    assert.deepEqual(panel.posted.at(-1), { type: "devd/spinEnded", step: "slow", outcome: "cancelled" });
  });

  it("a foreach body's pane offers the other splits in a quick pick, spun with `split`", async () => {
    const daemon = { card: async (): Promise<CardResult> => ({ ok: true, step: "body", preview: "<html>body</html>" }) };
    const pane = new PreviewPanel(daemon, { appendLine: () => undefined } as never);
    await pane.spinFinished(result({ step: "body", split: { index: 1, count: 4 }, originRunId: "7" }), "firstSpin");
    assert.deepEqual(parsePageMessage({ type: "devd/action", action: "pickSplit" }), { type: "action", action: "pickSplit", step: undefined });
    recorded.panels[0].receive({ type: "devd/action", action: "pickSplit" });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    // the shared picker (commands/splitPick.ts), on the spin's parents' run
    assert.equal(recorded.commands.at(-1)?.[0], "devd.pickSplit");
    assert.deepEqual(recorded.commands.at(-1)?.[1], { uri: "file:///p/flow.py", step: "body", runId: "7", count: 4, current: 1 });
  });

  it("a started spin refused (a flow never run) leaves the pane's spinning state", async () => {
    const daemon = { card: async (): Promise<CardResult> => ({ ok: true, step: "end", preview: "<html>end</html>" }) };
    const pane = new PreviewPanel(daemon, { appendLine: () => undefined } as never);
    pane.spinStarted("file:///p/flow.py", "end", "firstSpin");
    pane.spinRefused("file:///p/flow.py", "end", "no run of F yet");
    assert.deepEqual(recorded.panels[0].posted.at(-1), { type: "devd/spinEnded", step: "end", outcome: "refused", message: "no run of F yet" });
    pane.spinRefused("file:///p/flow.py", "end", "again");
    assert.equal(recorded.panels[0].posted.length, 1, "once");
  });
});
