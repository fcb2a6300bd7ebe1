/** Cancel, Show Card Preview, Show Daemon Status, Restart Daemon. */
import { spawn } from "node:child_process";
import * as vscode from "vscode";

import { type Devd, settingsFor } from "../context";
import { Requests, type StatusResult } from "../protocol";
import { resolveInterpreterFor } from "../python/environment";
import { LogRouter } from "../server/logLines";
import { projectRoot } from "../server/project";
import { humanBytes } from "../statusbar/format";

export async function cancel(devd: Devd): Promise<number[]> {
  const cancelled: number[] = [];
  for (const { client } of devd.clients.running()) {
    const answer = await client.sendRequest(Requests.cancel, {});
    cancelled.push(...answer.cancelled);
  }
  void vscode.window.setStatusBarMessage(cancelled.length ? `devd: cancelled ${cancelled.length}` : "devd: nothing running", 3000);
  return cancelled;
}

/** The pane for the step last spun, else the step under the cursor's last spin. */
export async function showPreview(devd: Devd): Promise<void> {
  const current = devd.panel.current ?? devd.lastSpun;
  if (current) {
    await devd.panel.show(current, true);
    return;
  }
  const editor = vscode.window.activeTextEditor;
  const client = editor ? await devd.clients.clientFor(editor.document.uri) : undefined;
  if (!editor || !client) {
    void vscode.window.showInformationMessage("devd: no spin yet — press Ctrl+Alt+S in a step first.");
    return;
  }
  const status = await client.sendRequest(Requests.status, {});
  const last = newestSpinOf(status.lastSpins, editor.document.uri.fsPath);
  if (!last) {
    void vscode.window.showInformationMessage("devd: no spin of this flow yet — press Ctrl+Alt+S in a step first.");
    return;
  }
  await devd.panel.show({ uri: editor.document.uri.toString(), step: last.step }, true);
}

/** The newest spin of `flow`: devd/status lists last spins in the order they finished, newest last. */
export function newestSpinOf(lastSpins: StatusResult["lastSpins"], flow: string): StatusResult["lastSpins"][number] | undefined {
  const mine = lastSpins.filter((s) => s.flow === flow);
  return mine[mine.length - 1];
}

/**
 * The newest spin the workspace's daemons know (they outlive a window reload): its flow's
 * first project with a spin, that project's newest. Undefined when none has one.
 */
export async function newestSpinInWorkspace(devd: Devd): Promise<{ uri: string; step: string } | undefined> {
  const places = [
    ...vscode.workspace.textDocuments.filter((d) => d.languageId === "python" && d.uri.scheme === "file").map((d) => d.uri),
    // a file in the folder stands for its project (the clients key projects by file)
    ...(vscode.workspace.workspaceFolders ?? []).map((f) => vscode.Uri.joinPath(f.uri, "flow.py")),
  ];
  const asked = new Set<string>();
  for (const place of places) {
    const root = projectRoot(place.fsPath);
    if (asked.has(root)) {
      continue;
    }
    asked.add(root);
    const client = await devd.clients.clientFor(place);
    if (!client) {
      continue;
    }
    try {
      const status = await client.sendRequest(Requests.status, {});
      const last = status.lastSpins[status.lastSpins.length - 1];
      if (last) {
        return { uri: vscode.Uri.file(last.flow).toString(), step: last.step };
      }
    } catch {
      // that daemon is gone: try the next project
    }
  }
  return undefined;
}

export function formatStatusReport(s: StatusResult): string {
  const lines = [
    `devd daemon for ${s.root} (pid ${s.pid})`,
    `  warm: ${humanBytes(s.warmBytes)} of ${humanBytes(s.budgetBytes)} budget, ${s.warm.length} task(s)`,
    ...s.warm.map((w) => `    ${w.pathspec}  ${humanBytes(w.sizeBytes)}`),
    `  running: ${s.running.length ? s.running.map((r) => `${r.kind} ${r.step ?? ""} (${r.seconds.toFixed(1)} s, id ${r.id})`).join(", ") : "nothing"}`,
    `  watched flows: ${s.flows.join(", ") || "none"}`,
    `  last spins: ${s.lastSpins.map((l) => `${l.step} ${l.ok ? "ok" : "failed"} ${l.durationMs} ms`).join(", ") || "none"}`,
    `  prepared children: ${(s.prepared ?? []).map((p) => `${p.step} (pid ${p.pid})`).join(", ") || "none"}`,
  ];
  return lines.join("\n");
}

export async function showStatus(devd: Devd): Promise<void> {
  const running = devd.clients.running();
  if (!running.length) {
    devd.output.warn("no daemon connected: open a flow file to start one");
  }
  for (const { client } of running) {
    const status = await client.sendRequest(Requests.status, {});
    devd.output.info(formatStatusReport(status));
  }
  devd.output.show(true);
}

/**
 * Stop each project's daemon (the warm state goes with it) and start afresh: the clients are
 * stopped first, then the daemons, then one client per project starts (and with it a daemon).
 */
export async function restart(devd: Devd): Promise<void> {
  await devd.clients.restartAll("Restart Daemon", async () => {
    for (const root of devd.clients.roots()) {
      const resource = vscode.Uri.file(root);
      const python = await resolveInterpreterFor(resource, settingsFor(resource));
      const said = new LogRouter(devd.output); // `devd daemon stop`'s lines, one log line each
      await new Promise<void>((resolve) => {
        const child = spawn(python.path, ["-m", "devd.cli", "daemon", "stop", root], { cwd: root });
        child.stdout.on("data", (d: Buffer) => said.append(d.toString()));
        child.stderr.on("data", (d: Buffer) => said.append(d.toString()));
        child.on("error", () => resolve());
        child.on("close", () => {
          said.append("\n"); // its last line, if it did not end one
          resolve();
        });
      });
    }
  });
}
