/**
 * The `Metaflow Runs` view (devd's activity bar container): flow → runs (newest first) →
 * steps (their state in that run) → tasks (a foreach split's index and input) → artifacts
 * (type and summary). Every level is one daemon request (devd/runs, devd/graph with the
 * run, devd/tasks, devd/task); nothing is unpickled in the extension host. Selecting an
 * artifact shows its value in the pane (devd/artifactValue: the daemon renders it). A task
 * spins from its context menu or opens its card, a step spins against that run or resumes
 * it from there, a run is pinned as the parents of spins from the editor, pathspecs copy.
 */
import * as path from "node:path";
import * as vscode from "vscode";
import type { RequestType } from "vscode-jsonrpc";

import { formatSeconds } from "../flow/layout";
import { Requests } from "../protocol";

type Send = <P, R>(uri: string, type: RequestType<P, R, void>, params: P) => Promise<R | undefined>;

export type RunsItem =
  | { kind: "flow"; uri: string }
  | { kind: "run"; uri: string; flow: string; runId: string; status: string; description: string; tooltip: string }
  | { kind: "step"; uri: string; flow: string; runId: string; step: string; state: string; description: string }
  | { kind: "task"; uri: string; pathspec: string; state: string; label: string; description: string }
  | { kind: "artifact"; uri: string; pathspec: string; name: string; description: string; tooltip: string }
  | { kind: "more"; uri: string }
  | { kind: "note"; text: string };

/** The pathspec an item stands for (an artifact's is its task's and its name). */
export function pathspecOf(item: RunsItem): string | undefined {
  switch (item.kind) {
    case "run":
      return `${item.flow}/${item.runId}`;
    case "step":
      return `${item.flow}/${item.runId}/${item.step}`;
    case "task":
      return item.pathspec;
    case "artifact":
      return `${item.pathspec}/${item.name}`;
    default:
      return undefined;
  }
}

const PAGE = 50;
const ICONS: Record<string, string> = { ok: "pass", failed: "error", running: "sync~spin", "not-run": "circle-outline" };

export class RunsTree implements vscode.TreeDataProvider<RunsItem> {
  private readonly changed = new vscode.EventEmitter<RunsItem | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly flows: string[] = [];
  private readonly limits = new Map<string, number>();

  constructor(
    private readonly send: Send,
    /** The run pinned for a flow file (its runs show it). */
    private readonly pinnedRun: (uri: string) => string | undefined = () => undefined,
  ) {}

  /** A flow file the user opened: it joins the view (the newest first). */
  addFlow(uri: string): void {
    if (!this.flows.includes(uri)) {
      this.flows.unshift(uri);
      this.changed.fire(undefined);
    }
  }

  refresh(): void {
    this.changed.fire(undefined);
  }

  getTreeItem(item: RunsItem): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    switch (item.kind) {
      case "flow": {
        const t = new vscode.TreeItem(path.basename(vscode.Uri.parse(item.uri).fsPath), C.Expanded);
        t.iconPath = new vscode.ThemeIcon("type-hierarchy");
        t.contextValue = "flow";
        t.tooltip = vscode.Uri.parse(item.uri).fsPath;
        return t;
      }
      case "run": {
        const t = new vscode.TreeItem(item.runId, C.Collapsed);
        t.description = item.description;
        t.tooltip = item.tooltip;
        t.iconPath = new vscode.ThemeIcon(ICONS[item.status] ?? "circle-outline");
        const pinned = this.pinnedRun(item.uri) === item.runId;
        t.contextValue = pinned ? "run.pinned" : "run";
        if (pinned) {
          t.description = `pinned · ${item.description}`;
          t.tooltip = `${item.tooltip}\npinned: spins from the editor take their parents from this run`;
        }
        return t;
      }
      case "step": {
        const t = new vscode.TreeItem(item.step, item.state === "not-run" ? C.None : C.Collapsed);
        t.description = item.description;
        t.iconPath = new vscode.ThemeIcon(ICONS[item.state] ?? "circle-outline");
        t.contextValue = "step";
        return t;
      }
      case "task": {
        const t = new vscode.TreeItem(item.label, C.Collapsed);
        t.description = item.description;
        t.tooltip = item.pathspec;
        t.iconPath = new vscode.ThemeIcon(ICONS[item.state] ?? "circle-outline");
        t.contextValue = "task";
        return t;
      }
      case "artifact": {
        const t = new vscode.TreeItem(item.name, C.None);
        t.description = item.description;
        t.tooltip = item.tooltip;
        t.iconPath = new vscode.ThemeIcon("symbol-field");
        t.contextValue = "artifact";
        t.command = { command: "devd.runs.showValue", title: "Show Value", arguments: [item] };
        return t;
      }
      case "more": {
        const t = new vscode.TreeItem("More runs…", C.None);
        t.command = { command: "devd.runs.more", title: "More runs", arguments: [item] };
        return t;
      }
      case "note":
        return new vscode.TreeItem(item.text, C.None);
    }
  }

  async getChildren(item?: RunsItem): Promise<RunsItem[]> {
    if (!item) {
      return this.flows.length ? this.flows.map((uri) => ({ kind: "flow", uri })) : [{ kind: "note", text: "Open a Metaflow flow file to see its runs." }];
    }
    try {
      return await this.children(item);
    } catch (err) {
      return [{ kind: "note", text: `devd: ${String(err)}` }];
    }
  }

  /** Show more runs of a flow (paged: the first level opens at once with many runs). */
  more(item: RunsItem): void {
    if (item.kind === "more") {
      this.limits.set(item.uri, (this.limits.get(item.uri) ?? PAGE) + PAGE);
      this.changed.fire(undefined);
    }
  }

  private async children(item: RunsItem): Promise<RunsItem[]> {
    switch (item.kind) {
      case "flow": {
        const limit = this.limits.get(item.uri) ?? PAGE;
        const answer = await this.send(item.uri, Requests.runs, { uri: item.uri, limit: limit + 1 });
        if (!answer?.ok) {
          return [{ kind: "note", text: answer?.error?.message ?? "the daemon did not answer" }];
        }
        if (!answer.runs.length) {
          return [{ kind: "note", text: "No run yet: Run Flow (Ctrl+Alt+R) records one." }];
        }
        const runs: RunsItem[] = answer.runs.slice(0, limit).map((r) => ({
          kind: "run", uri: item.uri, flow: answer.flow ?? "", runId: r.runId, status: r.status,
          description: [r.status, r.createdAt ? new Date(r.createdAt * 1000).toLocaleString() : "", r.durationS !== null ? formatSeconds(r.durationS) : "", r.user ?? ""].filter(Boolean).join(" · "),
          tooltip: `${answer.flow}/${r.runId}${r.tags.length ? `\ntags: ${r.tags.join(", ")}` : ""}`,
        }));
        return answer.runs.length > limit ? [...runs, { kind: "more", uri: item.uri }] : runs;
      }
      case "run": {
        const graph = await this.send(item.uri, Requests.graph, { uri: item.uri, runId: item.runId });
        if (!graph?.ok) {
          return [{ kind: "note", text: graph?.error?.message ?? "the daemon did not answer" }];
        }
        return graph.nodes.map((n) => ({
          kind: "step", uri: item.uri, flow: item.flow, runId: item.runId, step: n.step, state: n.state,
          description: [n.state === "not-run" ? "not run" : n.state, n.tasks > 1 ? `${n.tasksOk}/${n.tasks} tasks` : "", n.durationS !== null ? formatSeconds(n.durationS) : ""].filter(Boolean).join(" · "),
        }));
      }
      case "step": {
        const answer = await this.send(item.uri, Requests.tasks, { uri: item.uri, runId: item.runId, step: item.step });
        if (!answer?.ok) {
          return [{ kind: "note", text: answer?.error?.message ?? "the daemon did not answer" }];
        }
        return answer.tasks.map((t) => ({
          kind: "task", uri: item.uri, pathspec: t.pathspec, state: t.state,
          label: t.index !== null ? `split ${t.index}${t.input !== null ? ` · ${t.input}` : ""}` : `task ${t.taskId}`,
          description: [t.index !== null ? `task ${t.taskId}` : "", t.state, t.durationS !== null ? formatSeconds(t.durationS) : ""].filter(Boolean).join(" · "),
        }));
      }
      case "task": {
        const answer = await this.send(item.uri, Requests.task, { uri: item.uri, pathspec: item.pathspec });
        if (!answer?.ok) {
          return [{ kind: "note", text: answer?.error?.message ?? "the daemon did not answer" }];
        }
        return answer.artifacts.map((a) => ({
          kind: "artifact", uri: item.uri, pathspec: item.pathspec, name: a.name,
          description: `${a.type} · ${a.summary}`, tooltip: `${a.name}: ${a.type}\n${a.summary}\n(select: its value in the devd pane)`,
        }));
      }
      default:
        return [];
    }
  }
}
