/**
 * The foreach split picker: spin one split of a step inside a foreach, chosen by its index or
 * its input value. One quick pick for the pane's `Other split…`, a graph node's `Spin a
 * Split…` and the runs tree's step: the run's tasks (devd/tasks: index, input, state) when
 * the run is known, else the split indices the last spin reported.
 */
import * as vscode from "vscode";

import type { Devd } from "../context";
import { Requests, type TaskInfo } from "../protocol";
import { spin } from "./spin";

export interface SplitWhere {
  uri: string;
  step: string;
  /** The run whose splits to offer (the graph's, the tree's, the pane's parents' run). */
  runId?: string | null;
  /** Without the run's tasks: how many splits the last spin saw, and which one it took. */
  count?: number;
  current?: number;
}

export interface SplitChoice extends vscode.QuickPickItem {
  /** A recorded task (from the run's tasks): spun as that pathspec. */
  pathspec?: string;
  /** A split index of the parents' run (no task list): spun with `split`. */
  index?: number;
}

/** Quick-pick rows: one per recorded task in split order (index, input, state); without
 * tasks, the indices of `count` splits but `current`. The input is the row's description,
 * so typing a value (or an index) narrows the list. */
export function splitChoices(tasks: TaskInfo[] | undefined, count?: number, current?: number): SplitChoice[] {
  const inSplits = (tasks ?? []).filter((t) => t.index !== null);
  if (inSplits.length) {
    const nested = new Set(inSplits.map((t) => t.index)).size < inSplits.length; // inner foreach
    return inSplits.map((t) => ({
      label: `split ${t.index}${nested ? ` (task ${t.taskId})` : ""}`,
      description: t.input !== null ? `input ${t.input}` : undefined,
      detail: `${t.pathspec} · ${t.state}`,
      pathspec: t.pathspec,
    }));
  }
  if (!count) {
    return [];
  }
  return Array.from({ length: count }, (_, i) => i)
    .filter((i) => i !== current)
    .map((i) => ({ label: `split ${i} of ${count}`, index: i }));
}

/** Ask which split, then spin it; says so when the step has no splits to choose from. */
export async function pickSplit(devd: Devd, where: SplitWhere): Promise<void> {
  let tasks: TaskInfo[] | undefined;
  if (where.runId) {
    const client = await devd.clients.clientFor(vscode.Uri.parse(where.uri));
    const answer = await client?.sendRequest(Requests.tasks, { uri: where.uri, runId: where.runId, step: where.step });
    if (answer && !answer.ok) {
      void vscode.window.showWarningMessage(`devd: ${answer.error?.message ?? `no tasks of ${where.step}`}`);
      return;
    }
    tasks = answer?.tasks;
  }
  const choices = splitChoices(tasks, where.count, where.current);
  if (!choices.length) {
    void vscode.window.showInformationMessage(`devd: ${where.step} is not inside a foreach${where.runId ? ` in run ${where.runId}` : ""}: it has no splits to pick.`);
    return;
  }
  const picked = await vscode.window.showQuickPick(choices, {
    title: `devd: spin ${where.step} on a split${where.runId ? ` of run ${where.runId}` : ""}`,
    placeHolder: "a split's index or input value",
    matchOnDescription: true,
  });
  if (!picked) {
    return;
  }
  if (picked.pathspec) {
    await spin(devd, { uri: where.uri, pathspec: picked.pathspec });
  } else if (picked.index !== undefined) {
    await spin(devd, { uri: where.uri, step: where.step, split: picked.index });
  }
}
