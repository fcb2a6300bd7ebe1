/**
 * The flow view's commands: a node's context menu (package.json's `webview/context` entries
 * hand over the node's `data-vscode-context`: its step), Open Card, and the split picker
 * shared by the graph, the pane and the runs tree.
 */
import { pickSplit, type SplitWhere } from "../commands/splitPick";
import { spin } from "../commands/spin";
import type { Devd } from "../context";
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
  register("devd.openCard", (uri: string, step: string) => openCard(devd, uri, step));
  register("devd.pickSplit", (where: SplitWhere) => pickSplit(devd, where));
  register("devd.runs.pickSplit", (item: RunsItem) => item.kind === "step" && pickSplit(devd, { uri: item.uri, step: item.step, runId: item.runId }));
}

/** The step's card in the pane: its last spin's here, else a spin makes one. */
export async function openCard(devd: Devd, uri: string, step: string): Promise<void> {
  if (!devd.flow.node(step)?.lastSpin) {
    const result = await spin(devd, { uri, step });
    if (!result || result.error?.type === "devd.BadRequest") {
      return; // refused (a flow never run…): spin said why
    }
  }
  await devd.panel.show({ uri, step }, true);
}
