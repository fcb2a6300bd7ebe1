/**
 * "devd: Choose Interpreter…": a quick pick as the Python extension's, listing its
 * environments (when installed) and the workspace's venvs; the choice is written to
 * devd.pythonPath, and the project's daemon is replaced by one of that interpreter.
 */
import { PythonExtension } from "@vscode/python-extension";
import * as vscode from "vscode";

import { type Candidate, interpreterCandidates, venvsIn } from "./candidates";
import { pythonExtensionInstalled, resolveInterpreterFor } from "./environment";
import { readSettings } from "../config/settings";

const ENTER_PATH = "$(folder-opened) Enter interpreter path…";
const CLEAR = "$(discard) Use the Python extension's interpreter (clear devd.pythonPath)";

async function pythonExtensionEnvironments(): Promise<string[]> {
  if (!pythonExtensionInstalled()) {
    return [];
  }
  try {
    const api = await PythonExtension.api();
    return api.environments.known.map((e) => e.executable.uri?.fsPath ?? e.path);
  } catch {
    return [];
  }
}

export async function chooseInterpreter(resource?: vscode.Uri): Promise<string | undefined> {
  const target = resource ?? vscode.window.activeTextEditor?.document.uri ?? vscode.workspace.workspaceFolders?.[0]?.uri;
  const settings = readSettings((k) => vscode.workspace.getConfiguration("devd", target).get(k));
  const current = target ? await resolveInterpreterFor(target, settings) : { path: settings.pythonPath || "python3", source: "default" };
  const venvs = (vscode.workspace.workspaceFolders ?? []).flatMap((f) => venvsIn(f.uri.fsPath));
  const candidates = interpreterCandidates(current, await pythonExtensionEnvironments(), venvs);
  type Item = vscode.QuickPickItem & { candidate?: Candidate };
  const items: Item[] = [
    ...candidates.map((c) => ({
      label: c.current ? `$(check) ${c.path}` : c.path,
      description: c.current ? `${c.source} · current` : c.source,
      candidate: c,
    })),
    { label: ENTER_PATH },
    ...(settings.pythonPath ? [{ label: CLEAR }] : []),
  ];
  const picked = await vscode.window.showQuickPick(items, {
    title: "devd: the Python that runs devd and your flows",
    placeHolder: `current: ${current.path}`,
  });
  if (!picked) {
    return undefined;
  }
  let chosen: string | undefined;
  if (picked.candidate) {
    chosen = picked.candidate.path === "python3" && picked.candidate.source === "default" ? "python3" : picked.candidate.path;
  } else if (picked.label === ENTER_PATH) {
    chosen = (await vscode.window.showInputBox({ title: "devd: path of a Python interpreter", prompt: "e.g. ~/venvs/ml/bin/python", value: settings.pythonPath }))?.trim();
    if (!chosen) {
      return undefined;
    }
  } else {
    chosen = "";
  }
  const target2 = vscode.workspace.workspaceFolders?.length ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
  await vscode.workspace.getConfiguration("devd", target).update("pythonPath", chosen, target2);
  return chosen;
}
