/** The interpreter for a resource: setting, Python extension (if installed), python3. */
import { PythonExtension } from "@vscode/python-extension";
import * as vscode from "vscode";

import type { Settings } from "../config/settings";
import { type Interpreter, resolveInterpreter } from "./interpreter";

const PYTHON_EXTENSION = "ms-python.python";

export function pythonExtensionInstalled(): boolean {
  return vscode.extensions.getExtension(PYTHON_EXTENSION) !== undefined;
}

async function fromPythonExtension(resource: vscode.Uri): Promise<string | undefined> {
  if (!pythonExtensionInstalled()) {
    return undefined;
  }
  const api = await PythonExtension.api();
  const active = api.environments.getActiveEnvironmentPath(resource);
  const env = await api.environments.resolveEnvironment(active);
  return env?.executable.uri?.fsPath ?? active.path;
}

export function resolveInterpreterFor(resource: vscode.Uri, settings: Settings): Promise<Interpreter> {
  return resolveInterpreter({ setting: settings.pythonPath, pythonExtension: () => fromPythonExtension(resource) });
}

/** Calls `onChange` when the Python extension's active environment changes (if it is installed). */
export async function watchPythonEnvironment(onChange: () => void): Promise<vscode.Disposable | undefined> {
  if (!pythonExtensionInstalled()) {
    return undefined;
  }
  try {
    const api = await PythonExtension.api();
    return api.environments.onDidChangeActiveEnvironmentPath(() => onChange());
  } catch {
    return undefined;
  }
}
