/** Run Flow (ctrl+alt+r, the `Run flow` lens) and Resume From Step, with progress and Cancel. */
import * as path from "node:path";
import * as vscode from "vscode";
import { WorkDoneProgress, type WorkDoneProgressBegin, type WorkDoneProgressReport } from "vscode-languageclient/node";

import { type Devd, saveFirst, settingsFor, targetDocument } from "../context";
import { Requests, type ResumeParams, type RunResult } from "../protocol";
import { runHeader } from "../server/logLines";
import { runEnd } from "./outcome";

let tokens = 0;

export async function run(devd: Devd, uriArg?: string | vscode.Uri): Promise<RunResult | undefined> {
  return flowCommand(devd, "run", uriArg);
}

/**
 * Resume from the lens's step, else a step picked from the daemon's lenses (or Metaflow's
 * default); the newest run, or `originRunId` (the runs explorer's Resume From Here).
 */
export async function resume(devd: Devd, uriArg?: string | vscode.Uri, step?: string, originRunId?: string): Promise<RunResult | undefined> {
  const doc = await targetDocument(uriArg);
  if (!doc) {
    return undefined;
  }
  let from = step;
  if (!from) {
    const lenses = (await vscode.commands.executeCommand<vscode.CodeLens[]>("vscode.executeCodeLensProvider", doc.uri)) ?? [];
    const steps = lenses.filter((l) => l.command?.command === "devd.resume").map((l) => String(l.command?.arguments?.[1]));
    const picked = await vscode.window.showQuickPick(
      [{ label: "$(debug-restart) the failed step", description: "Metaflow's default", step: "" }, ...steps.map((s) => ({ label: s, description: "", step: s }))],
      { title: "devd: resume the newest run from…" },
    );
    if (!picked) {
      return undefined;
    }
    from = picked.step || undefined;
  }
  return flowCommand(devd, "resume", doc.uri, from, originRunId);
}

async function flowCommand(devd: Devd, kind: "run" | "resume", uriArg?: string | vscode.Uri, step?: string, originRunId?: string): Promise<RunResult | undefined> {
  const doc = await targetDocument(uriArg);
  if (!doc || !(await saveFirst(doc))) {
    return undefined;
  }
  const client = await devd.clients.clientFor(doc.uri);
  if (!client) {
    return undefined;
  }
  const settings = settingsFor(doc.uri);
  const token = `devd-ui-${kind}-${process.pid}-${++tokens}`;
  const name = path.basename(doc.fileName);
  // devd/resume's params are devd/run's and the step to resume from
  const params: ResumeParams = { uri: doc.uri.toString(), args: settings.runArgs, workDoneToken: token };
  if (step) {
    params.step = step;
  }
  if (originRunId) {
    params.originRunId = originRunId;
  }
  devd.output.info(`${kind} ${name}${step ? ` from ${step}` : ""} ${settings.runArgs.join(" ")}`.trimEnd());
  devd.status.update({ running: kind === "run" ? "running" : `resuming ${step ?? ""}`.trim() });
  let steps = ""; // the last "k/N steps" the progress said, for the log's header line
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `devd: ${kind} ${name}`, cancellable: true },
    async (progress, cancel) => {
      let done = 0;
      const sub = client.onProgress(WorkDoneProgress.type, token, (value) => {
        if (value.kind === "report" || value.kind === "begin") {
          const v = value as WorkDoneProgressReport | WorkDoneProgressBegin;
          const pct = v.percentage ?? done;
          progress.report({ message: v.message, increment: Math.max(pct - done, 0) });
          done = Math.max(pct, done);
          if (v.message) {
            steps = /\d+\/\d+ steps/.exec(v.message)?.[0] ?? steps;
            devd.status.update({ running: `${kind} ${v.message.split(" (")[0]}` });
            devd.output.info(`${kind} ${name}: ${v.message}`);
          }
        }
      });
      const stop = cancel.onCancellationRequested(() => {
        void client.sendRequest(Requests.cancel, { target: "run" });
      });
      try {
        return await client.sendRequest(kind === "run" ? Requests.run : Requests.resume, params);
      } finally {
        sub.dispose();
        stop.dispose();
      }
    },
  );
  devd.status.update({ running: undefined });
  const end = runEnd(result);
  const header = runHeader(kind, name, end, steps, result.runId);
  if (end === "failed") {
    devd.output.error(header);
  } else {
    devd.output.info(header);
  }
  if (end === "cancelled") {
    void vscode.window.showInformationMessage(`devd: ${kind} of ${name} cancelled${result.runId ? ` (run ${result.runId})` : ""}`);
  } else if (end === "ok") {
    void vscode.window.showInformationMessage(`devd: ${kind} of ${name} finished: run ${result.runId}`);
  } else {
    const why = result.error?.message ?? `exit code ${result.returncode}`;
    void vscode.window.showErrorMessage(`devd: ${kind} of ${name} failed (${why})`, "Show Log").then((pick) => {
      if (pick) {
        devd.output.show(true);
      }
    });
  }
  return result;
}
