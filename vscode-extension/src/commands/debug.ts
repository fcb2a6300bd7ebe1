/** Debug Step (ctrl+alt+d, the `Debug` lens): spin under debugpy and attach VS Code to it. */
import * as vscode from "vscode";

import { type Devd, saveFirst, targetDocument } from "../context";
import { attachConfiguration } from "../debug/adapter";
import { type DebugReadyParams, Requests, type SpinParams, type SpinOutcome } from "../protocol";
import { spinParams } from "./spin";

export interface DebugOptions {
  uri?: string | vscode.Uri;
  step?: string;
}

/**
 * Save, ask the daemon for a debug spin of the lens's step (else the step at the cursor),
 * and attach when its child listens. The result comes when the step ends; the card pane
 * updates from the daemon's `devd/spinFinished`, as for any spin.
 */
export async function debugStep(devd: Devd, options: DebugOptions = {}): Promise<SpinOutcome | undefined> {
  const doc = await targetDocument(options.uri);
  if (!doc || !(await saveFirst(doc))) {
    return undefined;
  }
  const uri = doc.uri.toString();
  // The same request as a spin's (parents, pin, devd.runArgs' options), under the debugger.
  const params: SpinParams = { ...spinParams(devd, doc, { step: options.step }), debug: true };
  const client = await devd.clients.clientFor(doc.uri);
  if (!client) {
    return undefined;
  }
  devd.output.info(`debug spin of ${params.step ?? `line ${(params.line ?? 0) + 1}`} requested`);
  const ready = devd.debugReady.expect(uri);
  const answer = client.sendRequest(Requests.spin, params);
  const first = await Promise.race([
    ready.then((r): { ready: DebugReadyParams } => ({ ready: r })),
    answer.then((r): { result: SpinOutcome } => ({ result: r })),
  ]).finally(() => devd.debugReady.forget(uri, ready)); // answered, failed or listening
  if ("result" in first) {
    // it ended before listening: a bad request (one line), or the step's set-up failed
    if (!first.result.ok && first.result.error?.type === "devd.BadRequest") {
      void vscode.window.showWarningMessage(`devd: ${first.result.error.message}`);
    }
    return first.result;
  }
  devd.output.info(`debugging ${first.ready.step}: debugpy on ${first.ready.host}:${first.ready.port}`);
  const folder = vscode.workspace.getWorkspaceFolder(doc.uri);
  const started = await vscode.debug.startDebugging(folder, attachConfiguration(first.ready));
  if (started) {
    devd.output.info("debug session started");
  } else {
    devd.output.warn("debug session did not start");
  }
  if (!started) {
    // nobody will attach: stop the spin now rather than at its timeout
    void client.sendRequest(Requests.cancel, { target: first.ready.step });
    void vscode.window.showWarningMessage("devd: VS Code could not start the debug session; the spin was cancelled.");
  }
  const result = await answer;
  if (!result.ok && result.error?.type === "devd.DebugTimeout") {
    void vscode.window.showWarningMessage(`devd: ${result.error.message}`);
  }
  return result;
}
