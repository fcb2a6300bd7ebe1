/**
 * Pinned runs (the runs explorer's Pin): per flow file, the run a spin from the editor
 * (Ctrl+Alt+S, the lens, a split) takes its parents from, instead of the newest run. Kept
 * in the workspace's state, shown in the status bar until unpinned.
 */
import * as vscode from "vscode";

export interface Pin {
  flow: string;
  runId: string;
}

const KEY = "devd.pinnedRuns";

/** The status bar's text and tooltip for the pins (undefined: nothing pinned, hidden). */
export function pinStatus(pins: Record<string, Pin>): { text: string; tooltip: string } | undefined {
  const all = Object.values(pins);
  if (!all.length) {
    return undefined;
  }
  const names = all.map((p) => `${p.flow}/${p.runId}`);
  return {
    text: `$(pinned) ${all.length === 1 ? names[0] : `${all.length} pinned runs`}`,
    tooltip: `devd: spins from the editor take their parents from ${names.join(", ")} (pinned in Metaflow Runs). Click to unpin.`,
  };
}

export class RunPins implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private pins: Record<string, Pin>;

  constructor(private readonly state: vscode.Memento) {
    this.pins = { ...(state.get<Record<string, Pin>>(KEY) ?? {}) };
    this.item = vscode.window.createStatusBarItem("devd.pinnedRun", vscode.StatusBarAlignment.Left, 49);
    this.item.name = "devd pinned run";
    this.item.command = "devd.runs.unpin";
    this.render();
  }

  /** The run pinned for the flow file `uri`, if any. */
  runFor(uri: string): string | undefined {
    return this.pins[uri]?.runId;
  }

  pinned(): Array<{ uri: string } & Pin> {
    return Object.entries(this.pins).map(([uri, p]) => ({ uri, ...p }));
  }

  async pin(uri: string, flow: string, runId: string): Promise<void> {
    this.pins[uri] = { flow, runId };
    await this.save();
  }

  async unpin(uri: string): Promise<void> {
    delete this.pins[uri];
    await this.save();
  }

  private async save(): Promise<void> {
    this.render();
    await this.state.update(KEY, this.pins);
  }

  private render(): void {
    const view = pinStatus(this.pins);
    if (!view) {
      this.item.hide();
      return;
    }
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}
