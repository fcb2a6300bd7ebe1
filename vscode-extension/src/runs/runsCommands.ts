/**
 * The `Metaflow Runs` tree's actions: an artifact's value in the pane, spin a task or a step
 * against its run, pin a run as the parents of spins from the editor (and unpin), open a
 * task's card, resume a run from a step, copy a pathspec.
 */
import * as vscode from "vscode";

import type { Devd } from "../context";
import { resume } from "../commands/run";
import { spin } from "../commands/spin";
import type { RunPins } from "./pins";
import { pathspecOf, type RunsItem, type RunsTree } from "./runsTree";

type Register = (id: string, fn: (...args: never[]) => unknown) => unknown;

export function registerRunsCommands(devd: Devd, register: Register, tree: RunsTree, pins: RunPins): void {
  register("devd.runs.refresh", () => tree.refresh());
  register("devd.runs.more", (item: RunsItem) => tree.more(item));
  register("devd.runs.showValue", (item: RunsItem) => item.kind === "artifact" && devd.panel.showValue(item.uri, item.pathspec, item.name));
  register("devd.runs.spinTask", (item: RunsItem) => item.kind === "task" && spin(devd, { uri: item.uri, pathspec: item.pathspec }));
  register("devd.runs.spinStep", (item: RunsItem) => item.kind === "step" && spin(devd, { uri: item.uri, pathspec: `${item.runId}/${item.step}` }));
  register("devd.runs.openCard", (item: RunsItem) => item.kind === "task" && devd.panel.showTask(item.uri, item.pathspec));
  register("devd.runs.resumeFrom", (item: RunsItem) => item.kind === "step" && resume(devd, item.uri, item.step, item.runId));
  register("devd.runs.copyPathspec", (item: RunsItem) => {
    const spec = pathspecOf(item);
    if (spec) {
      void vscode.env.clipboard.writeText(spec);
    }
  });
  register("devd.runs.pin", async (item: RunsItem) => {
    if (item.kind === "run") {
      await pins.pin(item.uri, item.flow, item.runId);
      tree.refresh();
    }
  });
  // From the tree (a pinned run's item), else the status bar: which pin, when there are several.
  register("devd.runs.unpin", async (item?: RunsItem) => {
    let uri = item && item.kind === "run" ? item.uri : undefined;
    if (!uri) {
      const all = pins.pinned();
      const picked = all.length === 1
        ? all[0]
        : await vscode.window.showQuickPick(all.map((p) => ({ ...p, label: `${p.flow}/${p.runId}`, description: vscode.workspace.asRelativePath(vscode.Uri.parse(p.uri)) })), { title: "devd: unpin which run?" });
      uri = picked?.uri;
    }
    if (uri) {
      await pins.unpin(uri);
      tree.refresh();
    }
  });
}
