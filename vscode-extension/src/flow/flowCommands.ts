/**
 * The flow view's commands: a node's context menu (package.json's `webview/context` entries
 * hand over the node's `data-vscode-context`: its step), Open Card, and the split picker
 * shared by the graph, the pane and the runs tree.
 */
import * as vscode from "vscode";

import { pickSplit, type SplitWhere, splitChoices } from "../commands/splitPick";
import { spin } from "../commands/spin";
import type { Devd } from "../context";
import { Requests, type TaskInfo } from "../protocol";
import type { RunsItem } from "../runs/runsTree";
import type { NodeAction } from "./flowPanel";

type Register = (id: string, fn: (...args: never[]) => unknown) => void;

/** What a node's context menu hands its command. */
interface NodeContext {
  step?: string;
}

const NODE_ACTIONS: NodeAction[] = ["spin", "debug", "resume", "card", "split"];

export function registerFlowCommands(devd: Devd, register: Register): void {
  for (const action of NODE_ACTIONS) {
    register(`devd.flow.${action}`, (node?: NodeContext) => (node?.step ? devd.flow.act(action, node.step) : undefined));
  }
  register("devd.flow.spinCard", (node?: NodeContext) => {
    const uri = devd.flow.current;
    return uri && node?.step ? openSpinCard(devd, uri, node.step) : undefined;
  });
  register("devd.openCard", (uri: string, step: string) => openCard(devd, uri, step));
  register("devd.pickSplit", (where: SplitWhere) => pickSplit(devd, where));
  register("devd.runs.pickSplit", (item: RunsItem) => item.kind === "step" && pickSplit(devd, { uri: item.uri, step: item.step, runId: item.runId }));
}

/**
 * A node's Open Card: the step as the run the view shows recorded it (its task's page with
 * the cards Metaflow stored, as Metaflow Runs' Open Card), a foreach body's split picked
 * first; a step that run did not reach (or no run): its last spin's card here, else a spin
 * makes one. A newer spin of the step stays one entry away (Open Last Spin's Card).
 */
export async function openCard(devd: Devd, uri: string, step: string): Promise<void> {
  const runId = devd.flow.current === uri ? devd.flow.run : undefined;
  const tasks = runId ? await recordedTasks(devd, uri, runId, step) : [];
  if (tasks === undefined) {
    return; // picker dismissed, or the daemon refused (it said why)
  }
  if (tasks.length) {
    const pathspec = tasks.length === 1 ? tasks[0].pathspec : await pickTask(tasks, step, runId);
    if (pathspec) {
      await devd.panel.showTask(uri, pathspec);
    }
    return;
  }
  await openSpinCard(devd, uri, step, true);
}

/** The step's last spin's card here; with `spinIfNone` a spin makes one, else says there is none. */
async function openSpinCard(devd: Devd, uri: string, step: string, spinIfNone = false): Promise<void> {
  if (!devd.flow.node(step)?.lastSpin) {
    if (!spinIfNone) {
      void vscode.window.showInformationMessage(`devd: ${step} has no spin here yet: ▶ Spin makes one.`);
      return;
    }
    const result = await spin(devd, { uri, step });
    if (!result || result.error?.type === "devd.BadRequest") {
      return; // refused (a flow never run…): spin said why
    }
  }
  await devd.panel.show({ uri, step }, true);
}

/** The step's tasks in run `runId` (none: the run has not reached it); undefined: refused. */
async function recordedTasks(devd: Devd, uri: string, runId: string, step: string): Promise<TaskInfo[] | undefined> {
  const client = await devd.clients.clientFor(vscode.Uri.parse(uri));
  const answer = await client?.sendRequest(Requests.tasks, { uri, runId, step });
  if (answer && !answer.ok) {
    void vscode.window.showWarningMessage(`devd: ${answer.error?.message ?? `no tasks of ${step} in run ${runId}`}`);
    return undefined;
  }
  return answer?.tasks ?? [];
}

/** Several tasks (a foreach body's splits, a recursive step's passes): which one's card. */
async function pickTask(tasks: TaskInfo[], step: string, runId: string | undefined): Promise<string | undefined> {
  const rows = splitChoices(tasks);
  const choices = rows.length ? rows : tasks.map((t) => ({ label: `task ${t.taskId}`, detail: `${t.pathspec} · ${t.state}`, pathspec: t.pathspec }));
  const picked = await vscode.window.showQuickPick(choices, {
    title: `devd: the card of which task of ${step}${runId ? ` in run ${runId}` : ""}?`,
    placeHolder: "a split's index or input value",
    matchOnDescription: true,
  });
  return picked?.pathspec;
}
