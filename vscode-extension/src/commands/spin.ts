/** Spin Step (ctrl+alt+s, the `▶ Spin` lens), With Artifacts…, From Last Spins. */
import * as path from "node:path";
import * as vscode from "vscode";

import { spinTopLevel } from "../config/settings";
import { type Devd, saveFirst, settingsFor, targetDocument } from "../context";
import { Requests, type SpinParams, type SpinOutcome } from "../protocol";

export interface SpinOptions {
  uri?: string | vscode.Uri;
  step?: string;
  fromSpin?: boolean;
  artifactsModule?: string;
  /** A foreach body: which split (the pane's Other split…). */
  split?: number;
  /** A recorded task (Flow/RUN/STEP/TASK) or RUN/STEP to spin, from the runs explorer. */
  pathspec?: string;
}

/**
 * The request every spin-like command sends (Spin, Debug, With Artifacts…, From Last Spins,
 * a graph node's Spin and Debug, a split): the target (a pathspec, the step, else the step
 * at the cursor), Metaflow's top-level options from `devd.runArgs` (the step runs where a
 * run would run it) and where the parents come from (a run pinned in Metaflow Runs, else
 * the newest; the last spins with fromSpin). A new option is added here, once.
 */
export function spinParams(devd: Pick<Devd, "pins">, doc: vscode.TextDocument, options: SpinOptions = {}): SpinParams {
  const params: SpinParams = { uri: doc.uri.toString(), ...spinTopLevel(settingsFor(doc.uri).runArgs) };
  if (options.pathspec) {
    params.pathspec = options.pathspec;
  } else if (options.step) {
    params.step = options.step;
  } else {
    const editor = vscode.window.activeTextEditor;
    params.line = editor && editor.document === doc ? editor.selection.active.line : 0;
  }
  // A recorded task names its own parents; From Last Spins takes the spins'.
  const pinned = options.pathspec || options.fromSpin ? undefined : devd.pins?.runFor(params.uri);
  if (pinned) {
    params.runId = pinned;
  }
  if (options.fromSpin) {
    params.fromSpin = true;
  }
  if (options.artifactsModule) {
    params.artifactsModule = options.artifactsModule;
  }
  if (options.split !== undefined) {
    params.split = options.split;
  }
  return params;
}

/** Spin the lens's step, else the step under the cursor; the daemon resolves the line. */
export async function spin(devd: Devd, options: SpinOptions = {}): Promise<SpinOutcome | undefined> {
  const doc = await targetDocument(options.uri);
  if (!doc || !(await saveFirst(doc))) {
    return undefined;
  }
  const params = spinParams(devd, doc, options);
  // The pane's page, if one can take a preview in place: the daemon sends it with the result.
  params.webview = devd.panel.webviewOptions() ?? null;
  const client = await devd.clients.clientFor(doc.uri);
  if (!client) {
    return undefined;
  }
  const result = await client.sendRequest(Requests.spin, params);
  if (!result.ok && result.error?.type === "devd.BadRequest") {
    if (/^no run of /.test(result.error.message)) {
      // A flow never run: the way on is one click (an error with a button stays until dismissed).
      void vscode.window.showErrorMessage(`devd: ${result.error.message}`, "Run Flow").then((pick) => {
        if (pick === "Run Flow") {
          void vscode.commands.executeCommand("devd.run", doc.uri);
        }
      });
    } else {
      void vscode.window.showWarningMessage(`devd: ${result.error.message}`);
    }
  }
  return result;
}

/** Pick a module defining ARTIFACTS (overrides of parent artifacts), then spin with it. */
export async function spinWithArtifacts(devd: Devd, uriArg?: string | vscode.Uri, step?: string): Promise<SpinOutcome | undefined> {
  const doc = await targetDocument(uriArg);
  if (!doc) {
    return undefined;
  }
  const folder = vscode.workspace.getWorkspaceFolder(doc.uri);
  const files = await vscode.workspace.findFiles(
    new vscode.RelativePattern(folder ?? path.dirname(doc.uri.fsPath), "**/*.py"),
    "**/{.venv,venv,node_modules,.metaflow,.metaflow_spin}/**",
    500,
  );
  const modules: vscode.Uri[] = [];
  for (const file of files) {
    if (file.fsPath === doc.uri.fsPath) {
      continue;
    }
    const text = Buffer.from(await vscode.workspace.fs.readFile(file)).toString("utf8");
    if (/^ARTIFACTS\s*[:=]/m.test(text)) {
      modules.push(file);
    }
  }
  const browse = "$(folder-opened) Browse…";
  const items = [
    ...modules.map((m) => ({ label: vscode.workspace.asRelativePath(m), description: "defines ARTIFACTS", uri: m })),
    { label: browse, description: "any Python file defining ARTIFACTS = {...}", uri: undefined },
  ];
  const picked = await vscode.window.showQuickPick(items, { title: "devd: spin with artifacts from…" });
  if (!picked) {
    return undefined;
  }
  let module = picked.uri;
  if (!module) {
    const chosen = await vscode.window.showOpenDialog({
      canSelectMany: false,
      filters: { Python: ["py"] },
      defaultUri: vscode.Uri.file(path.dirname(doc.uri.fsPath)),
    });
    module = chosen?.[0];
  }
  if (!module) {
    return undefined;
  }
  return spin(devd, { uri: doc.uri, step, artifactsModule: module.fsPath });
}
