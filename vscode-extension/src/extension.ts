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
import { DEBUG_TYPE, debugReadyWaiters, DevdDebugAdapterFactory } from "./debug/adapter";
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
  const output = vscode.window.createOutputChannel("devd", { log: true });
  // The language client's lines and the step's output, one leveled line each (no blank lines,
  // no second timestamp); a header per spin.
  const log = new LogRouter(output);
  const status = new StatusBar();
  const panel = new PreviewPanel(
    {
      card: async (uri, params) => {
        const client = await clients.clientFor(vscode.Uri.parse(uri));
        return client?.sendRequest(Requests.card, params);
      },
      cancel: async (uri, step) => {
        const client = await clients.clientFor(vscode.Uri.parse(uri));
        return client?.sendRequest(Requests.cancel, { target: step });
      },
      taskCard: async (uri, params) => (await clients.clientFor(vscode.Uri.parse(uri)))?.sendRequest(Requests.taskCard, params),
      artifactValue: async (uri, params) => (await clients.clientFor(vscode.Uri.parse(uri)))?.sendRequest(Requests.artifactValue, params),
    },
    output,
  );
  const refreshMemory = async (client: LanguageClient) => {
    try {
      const s = await client.sendRequest(Requests.status, {});
      status.update({ warmBytes: s.warmBytes, budgetBytes: s.budgetBytes });
    } catch {
      // the status bar keeps its last figures; the log has the connection error
    }
  };

  const clients: DaemonClients = new DaemonClients(log, {
    interpreter: (resource) => resolveInterpreterFor(resource, settingsFor(resource)),
    // The integrated terminal finds the `devd` of the interpreter the daemon runs with, so a
    // `devd spin …` typed there joins the same daemon (and the pane follows it).
    started: (python) => onInterpreter(context, python.path),
    offerInstall: (python, detail) => offerInstall(context, output, python, detail),
    attach: (client) => {
      client.onNotification(Notifications.log, (p) => log.append(p.text));
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
        void refreshMemory(client);
      });
      client.onNotification(Notifications.cardUpdated, (p) => panel.cardUpdated(p));
      client.onNotification(Notifications.debugReady, (p) => debugReadyWaiters.ready(p));
      client.onNotification(Notifications.stateChanged, (p) => {
        void flow.refresh(p.uri ?? undefined); // a spin began, a run ended, the file changed
        if (p.reason === "runFinished" || p.reason === "resumeFinished") {
          runsTree.refresh(); // a new run to list
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
    },
    state: (state: DaemonState) => onDaemonState(status, state),
  });
  const flow = new FlowPanel(graphRequest((uri) => clients.clientFor(uri)), output);
  const pins = new RunPins(context.workspaceState);
  const runsTree = new RunsTree(async (uri, type, params) => {
    const client = await clients.clientFor(vscode.Uri.parse(uri));
    return client?.sendRequest(type, params);
  }, (uri) => pins.runFor(uri));
  context.subscriptions.push(vscode.window.registerTreeDataProvider("devd.runs", runsTree));
  const devd: Devd = { clients, panel, status, output, flow, pins };
  context.subscriptions.push(output, status, panel, flow, pins, { dispose: () => void clients.dispose() });

  const register = (id: string, fn: (...args: never[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, fn as (...args: unknown[]) => unknown));
  // Keys pressed with focus in the pane pass PANE (package.json): the step the pane shows.
  const target = (uri?: string, step?: string) => (uri === PANE ? (panel.current ?? devd.lastSpun ?? {}) : { uri, step });
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
  register("devd.showLog", () => output.show(true));
  register("devd.chooseInterpreter", (uri?: vscode.Uri) => chooseInterpreter(uri));
  registerRunsCommands(devd, register, runsTree, pins);
  register("devd.showFlow", (uri?: string) => {
    const target = uri ?? (isFlowDocument(vscode.window.activeTextEditor?.document) ? vscode.window.activeTextEditor?.document.uri.toString() : flow.current);
    if (!target) {
      void vscode.window.showWarningMessage("devd: open a Metaflow flow file first, then Show Flow.");
      return;
    }
    void clients.clientFor(vscode.Uri.parse(target)).then(() => flow.show(target));
  });
  // After a window reload VS Code gives the pane back: it shows the newest spin again.
  context.subscriptions.push(
    vscode.window.registerWebviewPanelSerializer("devd.preview", {
      deserializeWebviewPanel: async (restored: vscode.WebviewPanel) => {
        panel.adopt(restored);
        const newest = await daemonCommands.newestSpinInWorkspace(devd);
        if (newest) {
          await panel.show(newest, false);
        }
      },
    }),
  );
  // The flow view comes back after a reload too, on the flow it showed (the page's state).
  context.subscriptions.push(
    vscode.window.registerWebviewPanelSerializer(FLOW_VIEW, {
      deserializeWebviewPanel: async (restored: vscode.WebviewPanel, state: unknown) => {
        const uri = (state as { uri?: string } | undefined)?.uri;
        flow.adopt(restored, uri);
        if (uri) {
          await clients.clientFor(vscode.Uri.parse(uri));
          await flow.refresh();
        }
      },
    }),
  );
  context.subscriptions.push(vscode.debug.registerDebugAdapterDescriptorFactory(DEBUG_TYPE, new DevdDebugAdapterFactory()));

  // A new interpreter or server setting needs a new server: once, after the edits settle.
  const restartSoon = debounce(() => void clients.restartAll("interpreter or settings changed"), 750);
  context.subscriptions.push(
    { dispose: () => restartSoon.cancel() },
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (RESTART_KEYS.some((k) => e.affectsConfiguration(k)) && clients.roots().length) {
        restartSoon();
      }
    }),
  );
  void watchPythonEnvironment(() => {
    if (clients.roots().length && !settingsFor().pythonPath) {
      restartSoon();
    }
  }).then((d) => d && context.subscriptions.push(d));

  // Light up on flow files: start the project's client when one is opened or focused.
  const consider = (doc: vscode.TextDocument | undefined) => {
    if (isFlowDocument(doc)) {
      runsTree.addFlow(doc.uri.toString());
      void clients.clientFor(doc.uri);
    }
  };
  // devd.isFlow: keys, palette commands (package.json) only where they mean something.
  let isFlow: boolean | undefined;
  const setIsFlow = () => {
    const now = isFlowDocument(vscode.window.activeTextEditor?.document);
    if (now !== isFlow) {
      isFlow = now;
      void vscode.commands.executeCommand("setContext", "devd.isFlow", now);
    }
  };
  context.subscriptions.push(
    vscode.window.onDidChangeActiveTextEditor((e) => {
      consider(e?.document);
      if (e && isFlowDocument(e.document)) {
        flow.follow(e.document.uri.toString()); // the graph follows the active flow
      }
      setIsFlow();
    }),
    vscode.workspace.onDidOpenTextDocument(consider),
    vscode.workspace.onDidChangeTextDocument((e) => {
      if (e.document === vscode.window.activeTextEditor?.document) {
        setIsFlow();
      }
    }),
  );
  vscode.workspace.textDocuments.forEach(consider);
  setIsFlow();
  output.appendLine(`[devd] activated in ${Date.now() - began} ms`);
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
async function offerInstall(context: vscode.ExtensionContext, output: vscode.OutputChannel, python: string, detail: string): Promise<boolean> {
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
  const code = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `devd: installing into ${python}` },
    () => installWheel(python, path.join(bundled, wheel), process.env, (t) => output.append(t)),
  );
  if (code !== 0) {
    void vscode.window.showErrorMessage(`devd: pip install failed (exit ${code}); the output is in the devd channel.`);
    return false;
  }
  return true;
}

export function deactivate(): void {
  // subscriptions (clients, pane, status bar) are disposed by VS Code
}
