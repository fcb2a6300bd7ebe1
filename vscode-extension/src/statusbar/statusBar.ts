/** The devd status bar item: daemon state, warm memory vs budget, last spin, staleness. */
import * as vscode from "vscode";

import { formatStatus, type StatusFacts } from "./format";

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private facts: StatusFacts = { daemon: "idle" };

  constructor() {
    this.item = vscode.window.createStatusBarItem("devd.status", vscode.StatusBarAlignment.Left, 50);
    this.item.name = "devd";
    this.render();
  }

  update(change: Partial<StatusFacts>): void {
    this.facts = { ...this.facts, ...change };
    this.render();
  }

  private render(): void {
    const view = formatStatus(this.facts);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.command = view.severity === "error" ? "devd.showLog" : "devd.showStatus";
    this.item.backgroundColor =
      view.severity === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : view.severity === "warning"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
    if (this.facts.daemon === "idle") {
      this.item.hide();
    } else {
      this.item.show();
    }
  }

  dispose(): void {
    this.item.dispose();
  }
}
