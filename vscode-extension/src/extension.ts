/**
 * devd for VS Code: the editor half of devd. The daemon owns state and logic (spins, runs,
 * cards, lenses, hovers, diagnostics); this extension owns the keys, the pane and the status.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";

import * as daemonCommands from "./commands/daemon";
import { debugStep } from "./commands/debug";
import { resume, run } from "./commands/run";
import { spin, spinWithArtifacts } from "./commands/spin";
import { RESTART_KEYS } from "./config/settings";
import { type Devd, settingsFor } from "./context";
import { DEBUG_TYPE, DebugReadyWaiters, DevdDebugAdapterFactory } from "./debug/adapter";
import { registerFlowCommands } from "./flow/flowCommands";
import { FLOW_VIEW, FlowPanel, graphRequest } from "./flow/flowPanel";
import { RunPins } from "./runs/pins";
import { registerRunsCommands } from "./runs/runsCommands";
import { RunsTree } from "./runs/runsTree";
import { PreviewPanel } from "./panel/previewPanel";
import { spinEnd } from "./panel/policy";
import { Notifications, Requests } from "./protocol";
import { resolveInterpreterFor, watchPythonEnvironment } from "./python/environment";
import { chooseInterpreter } from "./python/choose";
import { installWheel } from "./python/install";
import { type DaemonState, DaemonClients } from "./server/clients";
import { debounce } from "./server/debounce";
import { LogRouter, spinHeader } from "./server/logLines";
import { definesFlow } from "./server/project";
import { StatusBar } from "./statusbar/statusBar";

export function activate(context: vscode.ExtensionContext): void {
  const began = Date.now();
  const devd = createDevd(context);
  devd.clients.onClient((client) => listen(devd, client));
  context.subscriptions.push(
    devd.output,
    devd.status,
    devd.panel,
    devd.flow,
    devd.pins,
    { dispose: () => void devd.clients.dispose() },
    vscode.window.registerTreeDataProvider("devd.runs", devd.runs),
    vscode.debug.registerDebugAdapterDescriptorFactory(DEBUG_TYPE, new DevdDebugAdapterFactory()),
    ...registerCommands(devd),
    ...restoreViews(devd),
    ...restartOnChanges(context, devd),
    ...followFlowEditors(devd),
  );
  devd.output.info(`activated in ${Date.now() - began} ms`);
}

/** The extension's parts, each made from the ones before it (the context every command gets). */
function createDevd(context: vscode.ExtensionContext): Devd {
  const output = vscode.window.createOutputChannel("devd", { log: true });
  const status = new StatusBar();
  const clients = new DaemonClients(output, {
    interpreter: (resource) => resolveInterpreterFor(resource, settingsFor(resource)),
    // The integrated terminal finds the `devd` of the interpreter the daemon runs with, so a
    // `devd spin …` typed there joins the same daemon (and the pane follows it).
    started: (python) => onInterpreter(context, python.path),
    offerInstall: (python, detail) => offerInstall(context, output, python, detail),
    state: (state: DaemonState) => onDaemonState(status, state),
  });
  const panel = new PreviewPanel(
    {
      card: (uri, params) => clients.request(uri, Requests.card, params),
      cancel: (uri, step) => clients.request(uri, Requests.cancel, { target: step }),
      taskCard: (uri, params) => clients.request(uri, Requests.taskCard, params),
      artifactValue: (uri, params) => clients.request(uri, Requests.artifactValue, params),
    },
    output,
  );
  const flow = new FlowPanel(graphRequest((uri) => clients.clientFor(uri)), output);
  const pins = new RunPins(context.workspaceState);
  const runs = new RunsTree((uri, type, params) => clients.request(uri, type, params), (uri) => pins.runFor(uri));
  return { clients, panel, flow, runs, pins, status, output, debugReady: new DebugReadyWaiters() };
}

/** What the daemon tells a client: the step's output, spins, runs, cards, debug ports. */
function listen(devd: Devd, client: LanguageClient): void {
  const { output, panel, flow, status } = devd;
  // The step's output, one leveled line each (no blank lines, no second timestamp).
  const stepOutput = new LogRouter(output);
  client.onNotification(Notifications.log, (p) => stepOutput.append(p.text));
  client.onNotification(Notifications.spinFinished, (result) => {
    const end = spinEnd(result);
    if (result.step && end !== "refused" && end !== "superseded") {
      const header = spinHeader(result.step, end, result.durationMs, result.error?.type);
      if (end === "failed") {
        output.error(header);
      } else {
        output.info(header);
      }
    }
    if (result.step && result.uri && end !== "refused" && end !== "superseded") {
      devd.lastSpun = { uri: result.uri, step: result.step };
      status.update({
        running: undefined,
        lastSpin: {
          step: result.step,
          ok: result.ok,
          durationMs: result.durationMs,
          cancelled: end === "cancelled",
        },
        stale: (result.stale ?? []).map((m) => m.reason),
      });
    }
    void panel.spinFinished(result, settingsFor(result.uri ? vscode.Uri.parse(result.uri) : undefined).previewOpenOn);
    void flow.refresh(result.uri ?? undefined);
    void refreshMemory(devd, client);
  });
  client.onNotification(Notifications.cardUpdated, (p) => panel.cardUpdated(p));
  client.onNotification(Notifications.debugReady, (p) => devd.debugReady.ready(p));
  client.onNotification(Notifications.runProgress, (p) => flow.live(p)); // a run's tasks moved
  client.onNotification(Notifications.stateChanged, (p) => {
    void flow.refresh(p.uri ?? undefined); // a spin began, a run ended, the file changed
    if (p.reason === "runFinished" || p.reason === "resumeFinished") {
      devd.runs.refresh(); // a new run to list
    }
    if (p.reason === "spinStarted" && p.uri && p.step) {
      // Any spin (this editor's, a terminal's): `spinning <step>` and the pane's Cancel.
      status.update({ running: `spinning ${p.step}` });
      panel.spinStarted(p.uri, p.step, settingsFor(vscode.Uri.parse(p.uri)).previewOpenOn);
      return;
    }
    if (p.reason === "spinRefused" && p.uri && p.step) {
      // It never ran (a flow never run, …): no longer in flight; the requester was told why.
      status.update({ running: undefined });
      panel.spinRefused(p.uri, p.step, p.error ?? "");
      return;
    }
    // `stale` maps each step to its stale parents: the status bar follows the last spun step.
    const last = devd.lastSpun;
    if (p.reason === "fileChanged" && p.stale && last && p.uri === last.uri) {
      status.update({ stale: (p.stale[last.step] ?? []).map((m) => m.reason) });
    }
  });
}

/** The warm store's size in the status bar, after each spin. */
async function refreshMemory(devd: Devd, client: LanguageClient): Promise<void> {
  try {
    const s = await client.sendRequest(Requests.status, {});
    devd.status.update({ warmBytes: s.warmBytes, budgetBytes: s.budgetBytes, workers: s.workers ?? [] });
  } catch {
    // the status bar keeps its last figures; the log has the connection error
  }
}

/** Every devd command (package.json's `contributes.commands`). */
function registerCommands(devd: Devd): vscode.Disposable[] {
  const registered: vscode.Disposable[] = [];
  const register = (id: string, fn: (...args: never[]) => unknown) =>
    void registered.push(vscode.commands.registerCommand(id, fn as (...args: unknown[]) => unknown));
  // Keys pressed with focus in the pane pass PANE (package.json): the step the pane shows.
  const target = (uri?: string, step?: string) => (uri === PANE ? (devd.panel.current ?? devd.lastSpun ?? {}) : { uri, step });
  register("devd.spin", (uri?: string, step?: string) => spin(devd, target(uri, step)));
  register("devd.spinWithArtifacts", (uri?: string, step?: string) => spinWithArtifacts(devd, uri, step));
  register("devd.spinFromLast", (uri?: string, step?: string) => spin(devd, { uri, step, fromSpin: true }));
  register("devd.spinSplit", (uri?: string, step?: string, split?: number) => spin(devd, { uri, step, split }));
  register("devd.debug", (uri?: string, step?: string) => debugStep(devd, target(uri, step)));
  register("devd.run", (uri?: string) => run(devd, target(uri).uri));
  register("devd.resume", (uri?: string, step?: string) => resume(devd, uri, step));
  register("devd.cancel", () => daemonCommands.cancel(devd));
  register("devd.showPreview", () => daemonCommands.showPreview(devd));
  register("devd.showStatus", () => daemonCommands.showStatus(devd));
  register("devd.restart", () => daemonCommands.restart(devd));
  register("devd.showLog", () => devd.output.show(true));
  register("devd.chooseInterpreter", (uri?: vscode.Uri) => chooseInterpreter(uri));
  registerRunsCommands(devd, register, devd.runs, devd.pins);
  registerFlowCommands(devd, register);
  register("devd.showFlow", (uri?: string | vscode.Uri) => {
    const target = uri?.toString() ?? (isFlowDocument(vscode.window.activeTextEditor?.document) ? vscode.window.activeTextEditor?.document.uri.toString() : devd.flow.current);
    if (!target) {
      void vscode.window.showWarningMessage("devd: open a Metaflow flow file first, then Show Flow.");
      return;
    }
    void devd.clients.clientFor(vscode.Uri.parse(target)).then(() => devd.flow.show(target));
  });
  return registered;
}

/** After a window reload VS Code gives the pane and the flow view back. */
function restoreViews(devd: Devd): vscode.Disposable[] {
  return [
    // The pane shows the newest spin again.
    vscode.window.registerWebviewPanelSerializer("devd.preview", {
      deserializeWebviewPanel: async (restored: vscode.WebviewPanel) => {
        devd.panel.adopt(restored);
        const newest = await daemonCommands.newestSpinInWorkspace(devd);
        if (newest) {
          await devd.panel.show(newest, false);
        }
      },
    }),
    // The flow view, on the flow it showed (the page's state).
    vscode.window.registerWebviewPanelSerializer(FLOW_VIEW, {
      deserializeWebviewPanel: async (restored: vscode.WebviewPanel, state: unknown) => {
        const uri = (state as { uri?: string } | undefined)?.uri;
        devd.flow.adopt(restored, uri);
        if (uri) {
          await devd.clients.clientFor(vscode.Uri.parse(uri));
          await devd.flow.refresh();
        }
      },
    }),
  ];
}

/** A new interpreter or server setting needs a new server: once, after the edits settle. */
function restartOnChanges(context: vscode.ExtensionContext, devd: Devd): vscode.Disposable[] {
  const { clients } = devd;
  const restartSoon = debounce(() => void clients.restartAll("interpreter or settings changed"), 750);
  void watchPythonEnvironment(() => {
    if (clients.roots().length && !settingsFor().pythonPath) {
      restartSoon();
    }
  }).then((d) => d && context.subscriptions.push(d));
  return [
    { dispose: () => restartSoon.cancel() },
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (RESTART_KEYS.some((k) => e.affectsConfiguration(k)) && clients.roots().length) {
        restartSoon();
      }
    }),
  ];
}

/**
 * Light up on flow files: the project's client starts when one is opened or focused, the
 * graph follows the active flow, and `devd.isFlow` (package.json's keys and palette) is set.
 */
function followFlowEditors(devd: Devd): vscode.Disposable[] {
  const consider = (doc: vscode.TextDocument | undefined) => {
    if (isFlowDocument(doc)) {
      devd.runs.addFlow(doc.uri.toString());
      void devd.clients.clientFor(doc.uri);
    }
  };
  let isFlow: boolean | undefined;
  const setIsFlow = () => {
    const now = isFlowDocument(vscode.window.activeTextEditor?.document);
    if (now !== isFlow) {
      isFlow = now;
      void vscode.commands.executeCommand("setContext", "devd.isFlow", now);
    }
  };
  const watching = [
    vscode.window.onDidChangeActiveTextEditor((e) => {
      consider(e?.document);
      if (e && isFlowDocument(e.document)) {
        devd.flow.follow(e.document.uri.toString()); // the graph follows the active flow
      }
      setIsFlow();
    }),
    vscode.workspace.onDidOpenTextDocument(consider),
    vscode.workspace.onDidChangeTextDocument((e) => {
      if (e.document === vscode.window.activeTextEditor?.document) {
        setIsFlow();
      }
    }),
  ];
  vscode.workspace.textDocuments.forEach(consider);
  setIsFlow();
  return watching;
}

/** The interpreter's directory first on the integrated terminal's PATH (new terminals). */
function onInterpreter(context: vscode.ExtensionContext, python: string): void {
  const env = context.environmentVariableCollection;
  env.clear();
  if (!path.isAbsolute(python)) {
    return; // `python3` from PATH: the terminal's PATH finds the same one
  }
  const bin = path.dirname(python);
  env.prepend("PATH", bin + path.delimiter);
  env.description = `devd: ${bin} first on PATH, for the devd of ${python}`;
}

/** What `args` the pane's keybindings give devd.spin, devd.debug and devd.run. */
const PANE = "pane";

function isFlowDocument(doc: vscode.TextDocument | undefined): doc is vscode.TextDocument {
  return doc !== undefined && doc.languageId === "python" && doc.uri.scheme === "file" && definesFlow(doc.getText());
}

function onDaemonState(status: StatusBar, state: DaemonState): void {
  switch (state.kind) {
    case "failed":
      status.update({ daemon: "failed", message: state.message });
      break;
    case "notInstalled":
      status.update({ daemon: "notInstalled", message: `devd is not importable by ${state.python}: ${state.detail}` });
      break;
    default:
      status.update({ daemon: state.kind, message: undefined });
  }
}

/** devd is missing from the interpreter: offer the wheel shipped inside this extension. */
async function offerInstall(context: vscode.ExtensionContext, output: vscode.LogOutputChannel, python: string, detail: string): Promise<boolean> {
  const bundled = path.join(context.extensionPath, "bundled");
  const wheel = fs.existsSync(bundled) ? fs.readdirSync(bundled).find((f) => /^devd-.*\.whl$/.test(f)) : undefined;
  const choice = await vscode.window.showWarningMessage(
    wheel
      ? `devd is not installed in ${python} (${detail}). Install the devd this extension ships into ${python}?`
      : `devd is not installed in ${python} (${detail}): choose an interpreter that has it.`,
    ...(wheel ? ["Install devd"] : []),
    "Choose Interpreter…",
  );
  if (choice === "Choose Interpreter…") {
    await vscode.commands.executeCommand("devd.chooseInterpreter");
    return false;
  }
  if (choice !== "Install devd" || !wheel) {
    return false;
  }
  output.show(true);
  const pip = new LogRouter(output); // pip's lines, one log line each
  const code = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `devd: installing into ${python}` },
    () => installWheel(python, path.join(bundled, wheel), process.env, (t) => pip.append(t)),
  );
  pip.append("\n"); // its last line, if it did not end one
  if (code !== 0) {
    void vscode.window.showErrorMessage(`devd: pip install failed (exit ${code}); the output is in the devd channel.`);
    return false;
  }
  return true;
}

export function deactivate(): void {
  // subscriptions (clients, pane, status bar) are disposed by VS Code
}
