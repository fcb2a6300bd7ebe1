/** What every command needs: the clients, the pane, the status bar, the log and the settings. */
import * as vscode from "vscode";

import { readSettings, type Settings } from "./config/settings";
import type { DebugReadyWaiters } from "./debug/adapter";
import type { FlowPanel } from "./flow/flowPanel";
import type { PreviewPanel } from "./panel/previewPanel";
import type { RunPins } from "./runs/pins";
import type { RunsTree } from "./runs/runsTree";
import type { DaemonClients } from "./server/clients";
import type { StatusBar } from "./statusbar/statusBar";

export interface Devd {
  clients: DaemonClients;
  panel: PreviewPanel;
  /** The flow graph view (devd: Show Flow). */
  flow: FlowPanel;
  status: StatusBar;
  /** The `devd` log channel: `output.info/warn/error` (it stamps and levels each line). */
  output: vscode.LogOutputChannel;
  /** Debug Step's commands waiting for their spin's `devd/debugReady`. */
  debugReady: DebugReadyWaiters;
  /** Runs pinned in Metaflow Runs as the parents of spins from the editor, per flow file. */
  pins: RunPins;
  /** The `Metaflow Runs` view. */
  runs: RunsTree;
  /** The step last spun in any project (from this editor or a terminal). */
  lastSpun?: { uri: string; step: string };
}

export function settingsFor(resource?: vscode.Uri): Settings {
  const section = vscode.workspace.getConfiguration("devd", resource);
  return readSettings((key) => section.get(key));
}

/** The Python document a command is about: the lens's file, else the active editor's. */
export async function targetDocument(uriArg?: string | vscode.Uri): Promise<vscode.TextDocument | undefined> {
  if (uriArg) {
    const uri = typeof uriArg === "string" ? vscode.Uri.parse(uriArg) : uriArg;
    return vscode.workspace.openTextDocument(uri);
  }
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== "python") {
    void vscode.window.showWarningMessage("devd: open a Metaflow flow file (Python) first.");
    return undefined;
  }
  return editor.document;
}

/** Save before a spin or run, so the daemon executes what the user sees. */
export async function saveFirst(doc: vscode.TextDocument): Promise<boolean> {
  if (doc.isDirty && !(await doc.save())) {
    void vscode.window.showWarningMessage(`devd: could not save ${doc.fileName}; nothing was run.`);
    return false;
  }
  return true;
}
