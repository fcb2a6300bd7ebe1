import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { debugStep } from "../src/commands/debug";
import type { Devd } from "../src/context";
import { adapterEndpoint, DebugReadyWaiters, DevdDebugAdapterFactory } from "../src/debug/adapter";
import { DebugAdapterServer, recorded, reset, Uri } from "./stubs/vscode";

function editorAt(line: number) {
  const doc = { uri: Uri.file("/p/flow.py"), fileName: "/p/flow.py", languageId: "python", isDirty: true, saved: 0,
    async save() { this.saved += 1; this.isDirty = false; return true; } };
  recorded.activeEditor = { document: doc, selection: { active: { line } } };
  return doc;
}

/** A client whose spin answers once `finish` is called; `devd/debugReady` is sent first. */
function daemon(options: { ready?: boolean; answer: Record<string, unknown> }) {
  const sent: { method: string; params: Record<string, unknown> }[] = [];
  const debugReady = new DebugReadyWaiters();
  const client = {
    sendRequest: ({ method }: { method: string }, params: Record<string, unknown>) => {
      sent.push({ method, params });
      if (method !== "devd/spin") {
        return Promise.resolve({ cancelled: [1] });
      }
      if (options.ready) {
        setTimeout(() => debugReady.ready({ uri: "file:///p/flow.py", step: "train", host: "127.0.0.1", port: 40123 }), 1);
        return new Promise((resolve) => setTimeout(() => resolve(options.answer), 5));
      }
      return Promise.resolve(options.answer);
    },
  };
  const lines: string[] = [];
  const output = { info: (l: string) => lines.push(l), warn: (l: string) => lines.push(l), error: (l: string) => lines.push(l) };
  const devd = { clients: { clientFor: async () => client }, output, debugReady } as unknown as Devd;
  return { devd, sent, lines };
}

describe("Debug Step", () => {
  beforeEach(() => reset());

  it("saves, spins with debug at the cursor's line, attaches its own debug type to the port", async () => {
    const doc = editorAt(14);
    const { devd, sent } = daemon({ ready: true, answer: { ok: true, step: "train" } });
    const result = await debugStep(devd);
    assert.equal(doc.saved, 1);
    assert.deepEqual(sent, [{ method: "devd/spin", params: { uri: "file:///p/flow.py", debug: true, line: 14 } }]);
    assert.deepEqual(recorded.debugSessions, [{ type: "devd", request: "attach", name: "devd: debug train",
      connect: { host: "127.0.0.1", port: 40123 }, justMyCode: true,
      rules: [{ module: "devd", include: false }, { module: "metaflow", include: false }] }]);
    assert.equal(result?.ok, true);
  });

  it("takes its parents where a spin does: the run pinned in Metaflow Runs (issue 20)", async () => {
    editorAt(14);
    const { devd, sent } = daemon({ ready: true, answer: { ok: true, step: "train" } });
    (devd as unknown as { pins: unknown }).pins = { runFor: (uri: string) => (uri === "file:///p/flow.py" ? "1700" : undefined) };
    await debugStep(devd, { uri: "file:///p/flow.py", step: "train" });
    assert.deepEqual(sent[0], { method: "devd/spin", params: { uri: "file:///p/flow.py", step: "train", runId: "1700", debug: true } });
  });

  it("a request the daemon refuses is one line, and no session starts", async () => {
    editorAt(2);
    const message = "line 3 of flow.py is not inside a step; put the cursor in one of: start, train";
    const { devd } = daemon({ answer: { ok: false, error: { type: "devd.BadRequest", message } } });
    await debugStep(devd);
    assert.deepEqual(recorded.warnings, [`devd: ${message}`]);
    assert.deepEqual(recorded.debugSessions, []);
  });

  it("a session VS Code cannot start cancels the spin instead of waiting for its timeout", async () => {
    editorAt(14);
    recorded.debugStarts = false;
    const { devd, sent } = daemon({ ready: true, answer: { ok: false, error: { type: "devd.Cancelled", message: "cancelled" } } });
    await debugStep(devd, { uri: "file:///p/flow.py", step: "train" });
    assert.deepEqual(sent[1], { method: "devd/cancel", params: { target: "train" } });
  });

  it("a spin that answers first does not take a newer spin's wait for its port", async () => {
    const debugReadyWaiters = new DebugReadyWaiters();
    const older = debugReadyWaiters.expect("file:///p/flow.py");
    const newer = debugReadyWaiters.expect("file:///p/flow.py");
    debugReadyWaiters.forget("file:///p/flow.py", older);
    const ready = { uri: "file:///p/flow.py", step: "train", host: "127.0.0.1", port: 4 };
    assert.equal(debugReadyWaiters.ready(ready), true);
    assert.deepEqual(await newer, ready);
    assert.equal(debugReadyWaiters.ready(ready), false);
  });

  it("the adapter is debugpy's, on loopback only", () => {
    const server = new DevdDebugAdapterFactory().createDebugAdapterDescriptor({
      configuration: { type: "devd", request: "attach", name: "x", connect: { host: "127.0.0.1", port: 5678 } },
    } as never) as unknown as DebugAdapterServer;
    assert.deepEqual([server.port, server.host], [5678, "127.0.0.1"]);
    assert.throws(() => adapterEndpoint({ type: "devd", request: "attach", name: "x", connect: { host: "10.0.0.2", port: 5678 } }),
      /loopback only, not 10\.0\.0\.2/);
    assert.throws(() => adapterEndpoint({ type: "devd", request: "attach", name: "x" }), /needs connect\.port/);
  });
});
