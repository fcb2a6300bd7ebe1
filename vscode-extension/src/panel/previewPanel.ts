/**
 * The card pane: one webview beside the editor showing the daemon's preview page of the
 * step last spun (from this editor or a terminal). The page is set once; every later spin
 * result and live card update is posted into it, so it changes in place.
 */
import { randomBytes } from "node:crypto";
import * as vscode from "vscode";

import type { OpenOn } from "../config/settings";
import {
  type ArtifactValueParams,
  type ArtifactValueResult,
  type CardParams,
  type CardResult,
  type CardUpdatedParams,
  Methods,
  type PanePreview,
  type SpinOutcome,
  type TaskCardParams,
  type WebviewOptions,
} from "../protocol";
import type { LiveCard, ToPage } from "./pageMessages";
import { makeNonce, type PaneButton, paneAction, paneColumn, paneOnSpinStart, parsePageMessage, spinEnd } from "./policy";

export interface PreviewSource {
  /** `devd/card` on the client serving `uri`. */
  card(uri: string, params: CardParams): Promise<CardResult | undefined>;
  /** `devd/cancel` of the step's spin on the client serving `uri` (the pane's Cancel). */
  cancel?(uri: string, step: string): Promise<unknown>;
  /** `devd/taskCard`: a recorded task's page with its stored cards (the runs explorer). */
  taskCard?(uri: string, params: TaskCardParams): Promise<CardResult | undefined>;
  /** `devd/artifactValue`: a recorded artifact's value, rendered by the daemon. */
  artifactValue?(uri: string, params: ArtifactValueParams): Promise<ArtifactValueResult | undefined>;
}

/** The pane's buttons other than Cancel: the commands they run, with (uri, step). */
const BUTTON_COMMANDS: Record<Exclude<PaneButton, "cancel" | "pickSplit">, string> = {
  respin: "devd.spin",
  debug: "devd.debug",
  runFlow: "devd.run",
  resume: "devd.resume",
  spinFromLast: "devd.spinFromLast",
  showFlow: "devd.showFlow",
};

interface Shown {
  uri: string;
  step: string;
  /** A recorded task's pathspec: the pane shows that task's page (devd/taskCard). */
  recorded?: string;
}

export class PreviewPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private nonce = "";
  private shown: Shown | undefined;
  private openedBefore = false;
  /** The spin in flight the pane shows (its Cancel stops it). */
  private spinning: Shown | undefined;
  /** The split a foreach body's last spin took, by "uri step" (the pane offers the others). */
  private readonly splits = new Map<string, { index: number; count: number; runId: string | null }>();
  private loadedHtml = false;
  private latest = 0; // the newest request wins: an older page never overwrites a newer one
  /** Big card scripts the page holds (it keeps them: later pages leave them out). */
  private assets = new Set<string>();
  /** Those in the page last set as the webview's html (what a reloaded page holds). */
  private htmlAssets: string[] = [];
  /** A page was posted since the html was set: a reload of the webview shows an old page. */
  private postedSinceHtml = false;
  /**
   * The page's version: a new one whenever the page may hold fewer scripts than the pane
   * told the daemon (new html, a reload, hidden, closed). A preview pushed with a spin
   * result for another version is not for this page.
   */
  private version = 0;

  /** Tabs opened: the flow view opened over the pane moves the pane beside it. */
  private readonly tabWatch: vscode.Disposable;

  constructor(
    private readonly source: PreviewSource,
    private readonly output: vscode.LogOutputChannel,
  ) {
    this.tabWatch = vscode.window.tabGroups.onDidChangeTabs((e) => {
      if (e.opened.some(isFlowTab)) {
        this.makeRoom();
      }
    });
  }

  /** The flow view opened in the pane's column (hiding it): the pane goes beside the flow view. */
  private makeRoom(): void {
    const flow = flowViewColumn();
    if (this.panel && flow !== undefined && this.panel.viewColumn === flow) {
      this.panel.reveal(this.column(), true);
    }
  }

  /** Where the pane opens or is revealed: beside the flow view when it is open (policy.ts). */
  private column(): vscode.ViewColumn {
    const at = paneColumn(flowViewColumn(), this.panel?.viewColumn, vscode.window.activeTextEditor?.viewColumn);
    return at === "beside" ? vscode.ViewColumn.Beside : (at as vscode.ViewColumn);
  }

  /**
   * A spin started somewhere (this editor, a terminal): the pane, opened if it was closed,
   * says so with a Cancel button, under the tab `devd: <step>`.
   */
  spinStarted(uri: string, step: string, openOn: OpenOn): void {
    if (paneOnSpinStart(openOn, this.panel !== undefined) === "ignore") {
      return;
    }
    this.spinning = { uri, step };
    const hidden = this.panel !== undefined && !this.panel.visible;
    this.ensurePanel(hidden);
    if (!this.panel) {
      return;
    }
    this.panel.title = `devd: ${step}`;
    if (this.loadedHtml) {
      void this.toPage({ type: "devd/spinning", step });
    } else {
      this.panel.webview.html = spinningPage(this.nonce, step);
    }
  }

  /** A started spin ended with no result (a flow never run, …): the pane stops showing it. */
  spinRefused(uri: string, step: string, message: string): void {
    if (!this.spinning || this.spinning.uri !== uri || this.spinning.step !== step) {
      return;
    }
    this.spinning = undefined;
    if (this.panel) {
      void this.toPage({ type: "devd/spinEnded", step, outcome: "refused", message });
    }
  }

  /** A spin finished somewhere (this editor, a terminal): open, update or ignore the pane. */
  async spinFinished(result: SpinOutcome, openOn: OpenOn): Promise<void> {
    const end = spinEnd(result);
    if (result.uri && result.step && result.split) {
      this.splits.set(`${result.uri} ${result.step}`, { ...result.split, runId: result.originRunId });
    }
    if (end === "superseded") {
      return; // the newer spin of the step is on its way
    }
    const shownSpinning = this.spinning !== undefined && result.step === this.spinning.step && result.uri === this.spinning.uri;
    if (!shownSpinning) {
      // not the spin the pane shows in flight
    } else if (end !== "cancelled") {
      this.spinning = undefined;
      if (this.panel && this.loadedHtml && result.step) {
        void this.toPage({ type: "devd/spinEnded", step: result.step, outcome: end });
      }
    }
    if (end === "cancelled" && shownSpinning && this.panel && result.step) {
      this.spinning = undefined;
      this.panel.title = `devd: ${result.step}`;
      // The page says so itself, the preview page or the spinning one (same bar): no reload.
      void this.toPage({ type: "devd/spinEnded", step: result.step, outcome: "cancelled" });
      return;
    }
    const action = paneAction(result, openOn, this.panel !== undefined, this.openedBefore);
    if (action === "ignore" || !result.uri || !result.step) {
      return;
    }
    const target = { uri: result.uri, step: result.step };
    if (result.preview && this.takePushed(target, result.preview, action === "reveal")) {
      return;
    }
    await this.show(target, action !== "update");
  }

  /**
   * What the daemon needs to render previews for this pane (sent with each spin, so its
   * spinFinished carries the page): undefined while no page can take one in place.
   */
  webviewOptions(): WebviewOptions | undefined {
    const panel = this.postable();
    return panel ? this.optionsFor(panel.webview, [...this.assets]) : undefined;
  }

  /** A message to the pane's page (cards/preview.js), as pageMessages.ts declares it for both. */
  private toPage(message: ToPage): Thenable<boolean> {
    return this.panel ? this.panel.webview.postMessage(message) : Promise.resolve(false);
  }

  /** The pane, if its page is loaded and visible: a new preview can be posted into it. */
  private postable(): vscode.WebviewPanel | undefined {
    return this.loadedHtml && this.panel?.visible ? this.panel : undefined;
  }

  private optionsFor(webview: vscode.Webview, assets: string[]): WebviewOptions {
    return { nonce: this.nonce, cspSource: webview.cspSource, assets, version: this.version };
  }

  /** Post a preview that came with the spin result, if it was rendered for this page. */
  private takePushed(target: Shown, preview: PanePreview, reveal: boolean): boolean {
    if (!this.postable() || preview.version !== this.version || !preview.html) {
      return false;
    }
    ++this.latest; // supersedes any devd/card still on its way
    this.ensurePanel(reveal);
    void this.post(target, preview.html, preview.assets);
    return true;
  }

  /** Post a new preview into the loaded page (it updates in place). */
  private async post(target: Shown, html: string, assets: string[]): Promise<void> {
    if (!this.panel) {
      return;
    }
    this.shown = target;
    this.panel.title = `devd: ${target.step}`;
    if (!(await this.toPage({ type: "devd/preview", html }))) {
      this.output.warn(`the pane did not take the preview of ${target.step}`);
      return;
    }
    assets.forEach((a) => this.assets.add(a));
    this.postedSinceHtml = true;
  }

  /** Show the preview of `target` (Show Card Preview, or a spin that opens the pane). */
  async show(target: Shown, reveal: boolean): Promise<void> {
    const seq = ++this.latest;
    const webview = this.ensurePanel(reveal);
    const request = async (known: string[]): Promise<CardResult> => {
      try {
        const options = this.optionsFor(webview, known);
        const answer = target.recorded && this.source.taskCard
          ? await this.source.taskCard(target.uri, { uri: target.uri, pathspec: target.recorded, webview: options })
          : await this.source.card(target.uri, { uri: target.uri, step: target.step, webview: options });
        return answer ?? { ok: false, step: target.step, error: { type: "devd.NoAnswer", message: "no answer from the daemon" } };
      } catch (err) {
        return { ok: false, step: target.step, error: { type: "devd.NoAnswer", message: `devd/card failed: ${String(err)}` } };
      }
    };
    const known = this.postable() ? [...this.assets] : [];
    let card = await request(known);
    if (seq !== this.latest || !this.panel) {
      return;
    }
    if (card.ok && known.length && !this.postable()) {
      card = await request([]); // hidden meanwhile: the page itself must hold every script
    }
    if (seq !== this.latest || !this.panel) {
      return; // a newer spin's page is on its way, or the pane was closed meanwhile
    }
    if (!card || !card.ok || !card.preview) {
      if (!this.loadedHtml) {
        this.panel.webview.html = placeholder(this.nonce, card?.error?.message ?? "no preview from the daemon");
      }
      this.output.warn(`preview of ${target.step}: ${card?.error?.message ?? "no answer"}`);
      return;
    }
    if (this.postable()) {
      await this.post(target, card.preview, card.assets ?? []);
      return;
    }
    // A hidden webview gets no messages (and reloads when shown): give it the page itself.
    this.shown = target;
    this.panel.title = `devd: ${target.step}`;
    this.panel.webview.html = card.preview;
    this.version += 1;
    this.loadedHtml = true;
    this.htmlAssets = card.assets ?? [];
    this.assets = new Set(this.htmlAssets);
    this.postedSinceHtml = false;
  }

  /**
   * A recorded artifact's value (the runs explorer): the daemon renders the page (no
   * script; its style by the pane's nonce) and it replaces the pane's page; the next spin's
   * preview replaces it in turn.
   */
  async showValue(uri: string, pathspec: string, name: string): Promise<boolean> {
    const seq = ++this.latest;
    const webview = this.ensurePanel(true);
    let answer: ArtifactValueResult | undefined;
    try {
      answer = await this.source.artifactValue?.(uri, { uri, pathspec, name, webview: { nonce: this.nonce, cspSource: webview.cspSource } });
    } catch (err) {
      answer = { ok: false, error: { type: "devd.NoAnswer", message: `devd/artifactValue failed: ${String(err)}` } };
    }
    if (seq !== this.latest || !this.panel) {
      return false;
    }
    const html = answer?.ok && answer.html ? answer.html : placeholder(this.nonce, `devd: ${name}: ${answer?.error?.message ?? "no answer from the daemon"}`);
    this.panel.title = `devd: ${name}`;
    this.panel.webview.html = html;
    // Not a preview page: what comes next (a spin's page) is set whole, not posted into it.
    this.shown = undefined;
    this.version += 1;
    this.loadedHtml = false;
    this.assets.clear();
    this.htmlAssets = [];
    this.postedSinceHtml = false;
    return answer?.ok === true;
  }

  /** A recorded task's page with the cards Metaflow stored for it (the runs explorer's Open Card). */
  async showTask(uri: string, pathspec: string): Promise<void> {
    const step = pathspec.split("/")[2] ?? pathspec;
    await this.show({ uri, step, recorded: pathspec }, true);
  }

  /** A live card update of a running step: patch the pane if it shows that step. */
  cardUpdated(params: CardUpdatedParams): void {
    if (this.panel && this.shown && this.shown.uri === params.uri && this.shown.step === params.step) {
      void this.toPage({ type: Methods.cardUpdated, card: params.card as LiveCard });
    }
  }

  get current(): Shown | undefined {
    return this.shown;
  }

  private ensurePanel(reveal: boolean): vscode.Webview {
    if (this.panel) {
      if (reveal) {
        this.panel.reveal(this.column(), true);
      }
      return this.panel.webview;
    }
    this.newPage();
    const panel = vscode.window.createWebviewPanel(
      "devd.preview",
      "devd: card",
      { viewColumn: this.column(), preserveFocus: true },
      { enableScripts: true, localResourceRoots: [], enableFindWidget: true },
    );
    return this.wire(panel);
  }

  /**
   * The pane VS Code kept over a window reload (given back by the WebviewPanelSerializer):
   * adopted as the pane, saying it is on its way until `show` gives it the step's page.
   */
  adopt(panel: vscode.WebviewPanel): void {
    if (this.panel) {
      panel.dispose(); // one pane
      return;
    }
    this.newPage();
    panel.webview.options = { enableScripts: true, localResourceRoots: [] };
    this.wire(panel);
    panel.webview.html = placeholder(this.nonce, "devd: the pane shows the newest spin once the project's daemon answers (no spin yet? Press Ctrl+Alt+S in a step).");
  }

  /** A new pane: a new nonce and page, none of the old page's scripts. */
  private newPage(): void {
    this.nonce = makeNonce(randomBytes);
    this.version += 1;
    this.loadedHtml = false;
    this.assets.clear();
    this.htmlAssets = [];
    this.postedSinceHtml = false;
    this.openedBefore = true;
  }

  /** Listen to a new or adopted pane. */
  private wire(panel: vscode.WebviewPanel): vscode.Webview {
    panel.onDidDispose(() => {
      this.panel = undefined;
      this.shown = undefined;
      this.version += 1;
    });
    panel.onDidChangeViewState(() => {
      if (!panel.visible) {
        this.version += 1; // hidden: VS Code rebuilds the page from its html when shown
      }
    });
    panel.webview.onDidReceiveMessage((data: unknown) => this.onMessage(data));
    this.panel = panel;
    return panel.webview;
  }

  private async onMessage(data: unknown): Promise<void> {
    const msg = parsePageMessage(data);
    if (msg.type === "ready") {
      this.version += 1; // a page loaded: from the html, with that html's scripts only
      if (this.spinning && this.loadedHtml) {
        void this.toPage({ type: "devd/spinning", step: this.spinning.step });
      }
    }
    if (msg.type === "action") {
      await this.act(msg.action, msg.step);
      return;
    }
    if (msg.type === "ready" && this.postedSinceHtml && this.shown) {
      // VS Code reloaded the webview (hidden, then shown) from the html first set: it holds
      // that page's scripts only, and the newest preview goes to it again.
      this.assets = new Set(this.htmlAssets);
      this.postedSinceHtml = false;
      await this.show(this.shown, false);
      return;
    }
    if (msg.type !== "openFile") {
      return;
    }
    try {
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(msg.file));
      const line = Math.min(msg.line - 1, Math.max(doc.lineCount - 1, 0));
      const range = new vscode.Range(line, 0, line, 0);
      await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.One, selection: range });
    } catch (err) {
      void vscode.window.showWarningMessage(`devd: cannot open ${msg.file}: ${String(err)}`);
    }
  }

  /** A button of the pane: Cancel the spin in flight, or a command on the shown step. */
  private async act(action: PaneButton, step?: string): Promise<void> {
    if (action === "cancel") {
      const target = this.spinning ?? this.shown;
      if (target && this.source.cancel) {
        await this.source.cancel(target.uri, target.step);
      }
      return;
    }
    const target = this.shown ?? this.spinning;
    if (!target) {
      return;
    }
    if (action === "pickSplit") {
      await this.pickSplit(target);
      return;
    }
    const uri = vscode.Uri.parse(target.uri);
    const args = action === "runFlow" || action === "showFlow" ? [uri] : [uri, action === "resume" || action === "spinFromLast" ? (step ?? target.step) : target.step];
    await vscode.commands.executeCommand(BUTTON_COMMANDS[action], ...args);
  }

  /** A foreach body: the shared split picker (commands/splitPick.ts) on the parents' run. */
  private async pickSplit(target: Shown): Promise<void> {
    const split = this.splits.get(`${target.uri} ${target.step}`);
    if (split) {
      const where = { uri: target.uri, step: target.step, runId: split.runId, count: split.count, current: split.index };
      await vscode.commands.executeCommand("devd.pickSplit", where);
    }
  }

  dispose(): void {
    this.tabWatch.dispose();
    this.panel?.dispose();
  }
}

/** A tab of the flow view (its webview's viewType, as VS Code prefixes it: `…devd.flow`). */
function isFlowTab(tab: vscode.Tab): boolean {
  const viewType = (tab.input as { viewType?: unknown } | undefined)?.viewType;
  return typeof viewType === "string" && (viewType === "devd.flow" || viewType.endsWith("-devd.flow"));
}

/** The column the flow view is in, if it is open. */
function flowViewColumn(): vscode.ViewColumn | undefined {
  return vscode.window.tabGroups.all.find((g) => g.tabs.some(isFlowTab))?.viewColumn;
}

/**
 * The pane before any preview page: a spin in flight with a Cancel button (its script
 * says "cancelled" when the spin ends so). The preview page (cards/preview.js) shows the same bar over an older page.
 */
function spinningPage(nonce: string, step: string): string {
  const safe = step.replace(/[^A-Za-z0-9_]/g, "");
  const bar = `<span class="spinner"></span> spinning <code>${safe}</code>… <button data-action="cancel">Cancel</button>`;
  return `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'">
<style nonce="${nonce}">body{font-family:var(--vscode-font-family);color:var(--vscode-foreground);padding:1em}
button{background:var(--vscode-button-background);color:var(--vscode-button-foreground);border:0;padding:3px 10px;cursor:pointer}
.badge{padding:1px 8px;border-radius:10px;font-size:12px;border:1px solid var(--vscode-panel-border)}
.spinner{display:inline-block;width:10px;height:10px;border:2px solid var(--vscode-progressBar-background);border-right-color:transparent;border-radius:50%;animation:s 1s linear infinite}
@keyframes s{to{transform:rotate(360deg)}}</style>
</head><body><div id="spinning" class="spinning">${bar}</div>
<script nonce="${nonce}">(function(){var api=acquireVsCodeApi();
document.addEventListener("click",function(e){var b=e.target.closest&&e.target.closest("button[data-action]");if(b){api.postMessage({type:"devd/action",action:b.dataset.action});}});
window.addEventListener("message",function(e){var m=e.data||{};if(m.type!=="devd/spinEnded"){return;}var bar=document.getElementById("spinning");var step=String(m.step).replace(/[^A-Za-z0-9_]/g,"");
if(m.outcome==="cancelled"){bar.innerHTML='<span id="status" class="badge cancelled">cancelled</span> spin of '+step+" cancelled";}
else if(m.outcome==="refused"){bar.textContent="spin of "+step+" did not start: "+String(m.message||"");}});})();</script>
</body></html>`;
}

function placeholder(nonce: string, text: string): string {
  const safe = text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] ?? c);
  return `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'nonce-${nonce}'">
<style nonce="${nonce}">body{font-family:var(--vscode-font-family);color:var(--vscode-foreground);padding:1em}</style>
</head><body><p>${safe}</p></body></html>`;
}
