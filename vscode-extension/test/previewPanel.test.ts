import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { PreviewPanel } from "../src/panel/previewPanel";
import type { CardParams, CardResult, PanePreview, SpinOutcome } from "../src/protocol";
import { recorded, reset } from "./stubs/vscode";

const output = { info: () => undefined, warn: () => undefined, error: () => undefined } as never;

function spinResult(step = "train", over: Partial<SpinOutcome> = {}): SpinOutcome {
  return { ok: true, uri: "file:///p/flow.py", flow: "F", step, pathspec: null, persisted: false, durationMs: 20, artifacts: [], stdout: "", stderr: "", error: null, nextSteps: [], parents: [], originRunId: null, notices: [], timingsMs: {}, cards: [], recordedTask: null, ...over };
}

/** A daemon stand-in answering devd/card with a page naming the step and a counter. */
function source(delays: Record<string, number> = {}) {
  const asked: CardParams[] = [];
  let n = 0;
  return {
    asked,
    card: async (_uri: string, params: CardParams): Promise<CardResult> => {
      asked.push(params);
      const step = String(params.step);
      const page = `<html>${step} #${++n}</html>`;
      await new Promise((r) => setTimeout(r, delays[step] ?? 0));
      return { ok: true, step, preview: page };
    },
  };
}

describe("card pane", () => {
  beforeEach(() => reset());

  it("opens on the first spin with the page, then posts each new page in place", async () => {
    const daemon = source();
    const pane = new PreviewPanel(daemon, output);
    await pane.spinFinished(spinResult(), "firstSpin");
    assert.equal(recorded.panels.length, 1);
    const panel = recorded.panels[0];
    assert.equal(panel.htmlSets.length, 1);
    assert.match(panel.htmlSets[0], /train #1/);
    const nonce = daemon.asked[0].webview?.nonce ?? "";
    assert.match(nonce, /^[A-Za-z0-9]{16,}$/);
    await pane.spinFinished(spinResult(), "firstSpin");
    assert.equal(panel.htmlSets.length, 1, "no reload");
    assert.deepEqual(panel.posted, [{ type: "devd/preview", html: "<html>train #2</html>" }]);
    assert.equal(daemon.asked[1].webview?.nonce, nonce, "one nonce for the pane's life");
    assert.equal(recorded.panels.length, 1, "one pane, reused");
  });

  it("a slow older page never overwrites a newer one", async () => {
    const daemon = source({ start: 60 });
    const pane = new PreviewPanel(daemon, output);
    await pane.spinFinished(spinResult("train"), "firstSpin");
    const slow = pane.spinFinished(spinResult("start"), "firstSpin");
    const fast = pane.spinFinished(spinResult("join"), "firstSpin");
    await Promise.all([slow, fast]);
    const panel = recorded.panels[0];
    assert.deepEqual(panel.posted, [{ type: "devd/preview", html: "<html>join #3</html>" }]);
    assert.deepEqual(pane.current, { uri: "file:///p/flow.py", step: "join" });
  });

  it("a hidden pane gets the page itself (it gets no messages while hidden)", async () => {
    const pane = new PreviewPanel(source(), output);
    await pane.spinFinished(spinResult(), "firstSpin");
    const panel = recorded.panels[0];
    panel.visible = false;
    await pane.spinFinished(spinResult(), "firstSpin");
    assert.equal(panel.posted.length, 0);
    assert.equal(panel.htmlSets.length, 2);
  });

  it("live card updates reach the pane only for the step it shows", async () => {
    const pane = new PreviewPanel(source(), output);
    await pane.spinFinished(spinResult("train"), "firstSpin");
    pane.cardUpdated({ uri: "file:///p/flow.py", flow: "F", step: "start", card: { id: "x" } });
    pane.cardUpdated({ uri: "file:///p/flow.py", flow: "F", step: "train", card: { id: "live" } });
    assert.deepEqual(recorded.panels[0].posted, [{ type: "devd/cardUpdated", card: { id: "live" } }]);
  });

  it("a closed pane stays closed with firstSpin; everySpin opens it again", async () => {
    const pane = new PreviewPanel(source(), output);
    await pane.spinFinished(spinResult(), "firstSpin");
    recorded.panels[0].dispose();
    await pane.spinFinished(spinResult(), "firstSpin");
    assert.equal(recorded.panels.length, 1);
    await pane.spinFinished(spinResult(), "everySpin");
    assert.equal(recorded.panels.length, 2);
  });

  it("the error's file:line link opens the file at that line", async () => {
    const pane = new PreviewPanel(source(), output);
    await pane.spinFinished(spinResult("train", { ok: false, error: { type: "ValueError", message: "bad", file: "/p/flow.py", line: 14 } }), "firstSpin");
    recorded.panels[0].receive({ type: "devd/openFile", file: "/p/flow.py", line: 14 });
    await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(recorded.shownDocuments, [{ path: "/p/flow.py", line: 13 }]);
  });

  it("big card scripts go to the page once; a reloaded page gets them again", async () => {
    const asked: string[][] = [];
    const daemon = {
      card: async (_uri: string, params: CardParams): Promise<CardResult> => {
        const known = params.webview?.assets ?? [];
        asked.push(known);
        const full = !known.includes("abc");
        return { ok: true, step: "train", preview: full ? "<html>bundle</html>" : "<html>slim</html>", assets: full ? ["abc"] : [] };
      },
    };
    const pane = new PreviewPanel(daemon, output);
    await pane.spinFinished(spinResult(), "firstSpin");
    await pane.spinFinished(spinResult(), "firstSpin");
    const panel = recorded.panels[0];
    assert.deepEqual(asked, [[], ["abc"]]);
    assert.deepEqual(panel.posted, [{ type: "devd/preview", html: "<html>slim</html>" }]);
    // VS Code reloads a webview that was hidden: the page says ready, and gets the newest
    // preview posted again, slim, since the html it was rebuilt from holds the scripts.
    panel.receive({ type: "devd/ready" });
    await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(asked[2], ["abc"]);
    assert.equal(panel.posted.length, 2);
    // Hidden: the page itself is set, with every script in it.
    panel.visible = false;
    await pane.spinFinished(spinResult(), "firstSpin");
    assert.deepEqual(asked[3], []);
    assert.equal(panel.htmlSets[panel.htmlSets.length - 1], "<html>bundle</html>");
  });

  it("a preview that comes with the spin result is posted without asking again", async () => {
    const daemon = source();
    const pane = new PreviewPanel(daemon, output);
    assert.equal(pane.webviewOptions(), undefined, "no pane, nothing to render for");
    await pane.spinFinished(spinResult(), "firstSpin");
    const panel = recorded.panels[0];
    panel.receive({ type: "devd/ready" });
    const options = pane.webviewOptions();
    assert.ok(options && typeof options.version === "number");
    assert.equal(options.cspSource, "vscode-webview://stub");
    const pushed = (html: string, version = options.version ?? -1): PanePreview => ({ html, assets: [], version });
    await pane.spinFinished(spinResult("train", { preview: pushed("<html>pushed</html>") }), "firstSpin");
    assert.equal(daemon.asked.length, 1, "no devd/card for a pushed page");
    assert.deepEqual(panel.posted, [{ type: "devd/preview", html: "<html>pushed</html>" }]);
    // Rendered for the page before a reload: the page may lack its scripts, so ask instead.
    panel.receive({ type: "devd/ready" });
    await new Promise((r) => setTimeout(r, 5));
    const asked = daemon.asked.length;
    await pane.spinFinished(spinResult("train", { preview: pushed("<html>old page</html>") }), "firstSpin");
    assert.equal(daemon.asked.length, asked + 1);
    assert.ok(!panel.posted.some((m) => (m as { html?: string }).html === "<html>old page</html>"));
    // Hidden: nothing is rendered for it, and a push for it is not taken.
    const before = pane.webviewOptions();
    panel.setVisible(false);
    assert.equal(pane.webviewOptions(), undefined);
    await pane.spinFinished(spinResult("train", { preview: pushed("<html>hidden</html>", before?.version ?? undefined) }), "firstSpin");
    assert.ok(!panel.posted.some((m) => (m as { html?: string }).html === "<html>hidden</html>"));
  });
});
