import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { spin } from "../src/commands/spin";
import type { Devd } from "../src/context";
import { recorded, reset, Uri } from "./stubs/vscode";

/** A flow document in the stub editor, with the cursor on `line`. */
function editorAt(line: number, dirty = false) {
  const doc = {
    uri: Uri.file("/p/flow.py"),
    fileName: "/p/flow.py",
    languageId: "python",
    isDirty: dirty,
    saved: 0,
    async save() {
      this.saved += 1;
      this.isDirty = false;
      return true;
    },
  };
  recorded.activeEditor = { document: doc, selection: { active: { line } } };
  return doc;
}

function devdWith(answer: Record<string, unknown>, pane?: Record<string, unknown>) {
  const sent: { method: string; params: Record<string, unknown> }[] = [];
  const client = {
    sendRequest: async ({ method }: { method: string }, params: Record<string, unknown>) => {
      sent.push({ method, params });
      return answer;
    },
  };
  const panel = { webviewOptions: () => pane };
  const devd = { clients: { clientFor: async () => client }, panel } as unknown as Devd;
  return { devd, sent };
}

describe("Spin Step", () => {
  beforeEach(() => reset());

  it("saves, then asks the daemon for the step at the cursor's line", async () => {
    const doc = editorAt(17, true);
    const { devd, sent } = devdWith({ ok: true, step: "train" });
    await spin(devd);
    assert.equal(doc.saved, 1);
    assert.deepEqual(sent, [{ method: "devd/spin", params: { uri: "file:///p/flow.py", line: 17, webview: null } }]);
  });

  it("a lens names its step; chains and artifacts modules pass through", async () => {
    editorAt(0);
    const { devd, sent } = devdWith({ ok: true, step: "join" });
    await spin(devd, { uri: "file:///p/flow.py", step: "join", fromSpin: true, artifactsModule: "/p/over.py" });
    assert.deepEqual(sent[0].params, { uri: "file:///p/flow.py", step: "join", fromSpin: true, artifactsModule: "/p/over.py", webview: null });
  });

  it("an open pane goes with the request, so the result brings its page", async () => {
    editorAt(17);
    const pane = { nonce: "abc", cspSource: "vscode-webview://x", assets: ["h1"], version: 3 };
    const { devd, sent } = devdWith({ ok: true, step: "train" }, pane);
    await spin(devd);
    assert.deepEqual(sent[0].params.webview, pane);
  });

  it("a cursor outside any step shows the daemon's one line", async () => {
    editorAt(2);
    const message = "line 3 of flow.py is not inside a step; steps: start, train, join, end";
    const { devd } = devdWith({ ok: false, error: { type: "devd.BadRequest", message } });
    await spin(devd);
    assert.deepEqual(recorded.warnings, [`devd: ${message}`]);
  });

  it("a flow never run says so with a Run Flow button, which runs it (issue 19)", async () => {
    editorAt(9);
    const message = "no run of F yet (in namespace user:me); run `devd run /p/flow.py` first";
    const { devd } = devdWith({ ok: false, error: { type: "devd.BadRequest", message } });
    recorded.pick = "Run Flow";
    await spin(devd);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(recorded.errors, [{ message: `devd: ${message}`, items: ["Run Flow"] }]);
    assert.equal(recorded.commands.length, 1);
    assert.equal(recorded.commands[0][0], "devd.run");
    assert.equal(String((recorded.commands[0][1] as { fsPath: string }).fsPath), "/p/flow.py");
  });

  it("a failed step is not a popup: the pane and the diagnostics show it", async () => {
    editorAt(9);
    const { devd } = devdWith({ ok: false, error: { type: "ZeroDivisionError", message: "division by zero" } });
    await spin(devd);
    assert.deepEqual(recorded.warnings, []);
  });
});
