/**
 * `devd: Show Flow`: the flow's DAG beside the editor, each step with its state in the newest
 * run (ok, failed, running, not run), stale when its code changed since, and its last spin;
 * a click jumps to the step; its buttons and its context menu spin, debug, resume from it,
 * open its card or spin one of its foreach splits. The daemon answers devd/graph
 * (devd/core/graph.py); this panel lays it out (flow/layout.ts) and draws it. During a run
 * the daemon pushes every step's state (devd/runProgress): the nodes change in place, no
 * new graph asked. It follows the active flow editor and comes back after a window reload.
 */
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";

import { type GraphNodeInfo, type GraphResult, Requests, type RunProgressParams } from "../protocol";
import { layoutGraph, NODE_HEIGHT, NODE_WIDTH, nodeSummary } from "./layout";

export const FLOW_VIEW = "devd.flow";

/** How long a new view's page waits for its graph (devd/graph and the layout) to go in it.
 * VS Code wants the page only once it made the webview's frame (100-600 ms): a graph ready by
 * then costs nothing; past this the page comes alone and the graph follows by message. */
const FIRST_PAGE_WAIT_MS = 250;

export interface FlowRequests {
  graph(uri: string): Promise<GraphResult | undefined>;
}

/** What a node's buttons and its context menu do. */
export type NodeAction = "spin" | "debug" | "resume" | "card" | "split";

/** The command each action runs: `(uri, step)`, the split picker `({uri, step, runId})`. */
const ACTION_COMMANDS: Record<NodeAction, string> = {
  spin: "devd.spin",
  debug: "devd.debug",
  resume: "devd.resume",
  card: "devd.openCard",
  split: "devd.pickSplit",
};

interface PageMessage {
  type: "ready" | "open" | "action";
  /** With "ready": the page drew the graph it came with. */
  drawn?: boolean;
  step?: string;
  action?: NodeAction;
}

/** What a draw posts: the laid-out graph, or the one line saying why there is none. */
type Drawing = { uri: string; graph: GraphResult; post: Record<string, unknown> } | { uri: string; message: string };

/** The steps that run once per split of a foreach: its body (and, in a run, any step with
 * several tasks): the ones the split picker offers. */
export function splitSteps(nodes: Pick<GraphNodeInfo, "step" | "type" | "next" | "tasks">[]): Set<string> {
  const out = new Set<string>();
  for (const n of nodes) {
    if (n.type === "foreach") {
      n.next.forEach((s) => out.add(s));
    }
    if (n.tasks > 1) {
      out.add(n.step);
    }
  }
  return out;
}

export class FlowPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private uri: string | undefined;
  private nonce = "";
  private pending: Promise<void> | undefined;
  private again = false;
  /** Each step as last drawn (its def line, its last spin). */
  private nodes = new Map<string, GraphNodeInfo>();
  /** The run the nodes show (the graph's, then a live run's). */
  private runId: string | undefined;
  /** The graph asked for (and laid out) while VS Code makes a new view's page. */
  private early: Promise<Drawing> | undefined;

  constructor(private readonly requests: FlowRequests, private readonly output: vscode.LogOutputChannel) {}

  /** The flow file shown, if the panel is open. */
  get current(): string | undefined {
    return this.panel ? this.uri : undefined;
  }

  /** Open (or reveal) the view on the flow at ``uri``. */
  async show(uri: string): Promise<void> {
    this.uri = uri;
    if (!this.panel) {
      // VS Code takes most of a first Show Flow making the view's webview (its frame, service
      // worker and an empty document; ~0.5 s in code-server on a loaded machine, whatever the
      // page). The daemon's graph is asked for and laid out meanwhile, and goes in the page
      // itself: the page draws on its first script run, no message round trip after it.
      this.early = this.compose(uri);
      const panel = vscode.window.createWebviewPanel(FLOW_VIEW, "devd flow", { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, { enableScripts: true, retainContextWhenHidden: true });
      this.adopt(panel, undefined, this.early);
      return;
    }
    this.panel.reveal(undefined, true);
    await this.refresh();
  }

  /** Take a panel (a new one, or the one VS Code restores after a reload); ``early``: the
   * drawing being made for it, put in its page when ready in time. */
  adopt(panel: vscode.WebviewPanel, uri?: string, early?: Promise<Drawing>): void {
    this.panel = panel;
    if (uri) {
      this.uri = uri;
    }
    panel.webview.options = { enableScripts: true };
    this.nonce = randomBytes(18).toString("base64url");
    panel.webview.onDidReceiveMessage((m: PageMessage) => void this.onMessage(m));
    panel.onDidDispose(() => {
      if (this.panel === panel) {
        this.panel = undefined;
      }
    });
    if (early) {
      void this.firstPage(panel, early);
    } else {
      panel.webview.html = page(this.nonce);
    }
  }

  /** A new view's page, with the graph in it when the daemon and the layout answered within
   * FIRST_PAGE_WAIT_MS (VS Code wants the page only once its webview frame is up); else the
   * page asks for it ("ready") and draw() posts it. */
  private async firstPage(panel: vscode.WebviewPanel, early: Promise<Drawing>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const drawing = await Promise.race([early, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), FIRST_PAGE_WAIT_MS)))]);
    clearTimeout(timer);
    if (this.panel !== panel) {
      return;
    }
    if (drawing && "post" in drawing && drawing.uri === this.uri && this.early === early) {
      this.early = undefined;
      this.shown(panel, drawing);
      panel.webview.html = page(this.nonce, drawing.post);
      return;
    }
    panel.webview.html = page(this.nonce);
  }

  /** The run the view shows (the graph's, or a live run's), if open on one. */
  get run(): string | undefined {
    return this.panel ? this.runId : undefined;
  }

  /** The step as last drawn (undefined: not in the flow shown). */
  node(step: string): GraphNodeInfo | undefined {
    return this.nodes.get(step);
  }

  /** A run's states pushed by the daemon (devd/runProgress): the nodes change in place. */
  live(progress: RunProgressParams): void {
    if (!this.panel || progress.uri !== this.uri) {
      return;
    }
    this.runId = progress.runId;
    void this.panel.webview.postMessage({
      type: "states",
      runId: progress.runId,
      steps: progress.steps.map((s) => ({ step: s.step, state: s.state, summary: nodeSummary(s) })),
    });
  }

  /** A node's button or context-menu entry. */
  async act(action: NodeAction, step: string): Promise<void> {
    const uri = this.uri;
    if (!uri || !this.nodes.has(step)) {
      return;
    }
    if (action === "split") {
      await vscode.commands.executeCommand(ACTION_COMMANDS.split, { uri, step, runId: this.runId });
      return;
    }
    await vscode.commands.executeCommand(ACTION_COMMANDS[action], uri, step);
  }

  /** Follow the active editor when it is another flow file. */
  follow(uri: string): void {
    if (this.panel && uri !== this.uri) {
      this.uri = uri;
      void this.refresh();
    }
  }

  /** Ask the daemon again (a spin ended, a file changed, a run moved on): one at a time. */
  async refresh(uri?: string): Promise<void> {
    if (!this.panel || (uri && uri !== this.uri)) {
      return;
    }
    if (this.pending) {
      this.again = true;
      return this.pending;
    }
    this.pending = this.draw().finally(() => {
      this.pending = undefined;
      if (this.again) {
        this.again = false;
        void this.refresh();
      }
    });
    return this.pending;
  }

  private async draw(): Promise<void> {
    const panel = this.panel;
    const uri = this.uri;
    if (!panel || !uri) {
      return;
    }
    const early = this.early;
    this.early = undefined;
    const drawing = early ? await early : await this.compose(uri);
    if (this.panel !== panel) {
      return; // closed (or replaced) while the daemon answered
    }
    if (drawing.uri !== this.uri) {
      this.again = true; // it follows another flow now: that one is drawn next
      return;
    }
    if ("message" in drawing) {
      void panel.webview.postMessage({ type: "error", message: drawing.message });
      return;
    }
    this.shown(panel, drawing);
    void panel.webview.postMessage(drawing.post);
  }

  /** The title, nodes and run of a graph the page draws. */
  private shown(panel: vscode.WebviewPanel, drawing: Extract<Drawing, { graph: GraphResult }>): void {
    const graph = drawing.graph;
    panel.title = `devd flow: ${graph.flow ?? path.basename(vscode.Uri.parse(drawing.uri).fsPath)}`;
    this.nodes = new Map(graph.nodes.map((n) => [n.step, n]));
    this.runId = graph.run?.runId;
  }

  /** The daemon's graph of the flow at ``uri``, laid out for the page (or why not). */
  private async compose(uri: string): Promise<Drawing> {
    let graph: GraphResult | undefined;
    try {
      graph = await this.requests.graph(uri);
    } catch (err) {
      this.output.warn(`flow view: ${String(err)}`);
    }
    if (!graph || !graph.ok) {
      return { uri, message: graph?.error?.message ?? "the daemon did not answer devd/graph" };
    }
    const layout = layoutGraph(graph);
    const splits = splitSteps(graph.nodes);
    return {
      uri,
      graph,
      post: {
        type: "graph",
        uri,
        flow: graph.flow,
        file: graph.file ? path.basename(graph.file) : "",
        run: graph.run,
        width: layout.width,
        height: layout.height,
        nodes: layout.nodes.map((n) => ({ ...n, summary: nodeSummary(n), splits: splits.has(n.step) })),
        edges: layout.edges,
      },
    };
  }

  private async onMessage(message: PageMessage): Promise<void> {
    const uri = this.uri;
    if (message.type === "ready") {
      if (!message.drawn) {
        await this.refresh(); // the page came without a graph: a new view's late one, or after a reload
      }
      return;
    }
    if (!uri || !message.step) {
      return;
    }
    if (message.type === "open") {
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.parse(uri));
      const at = new vscode.Position(Math.max((this.nodes.get(message.step)?.line ?? 1) - 1, 0), 0);
      await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.One, selection: new vscode.Range(at, at) });
      return;
    }
    if (message.type === "action" && message.action && message.action in ACTION_COMMANDS) {
      await this.act(message.action, message.step);
    }
  }

  dispose(): void {
    this.panel?.dispose();
  }
}

/** A request function for the panel, through the project's client. */
export function graphRequest(clientFor: (uri: vscode.Uri) => Promise<Pick<LanguageClient, "sendRequest"> | undefined>): FlowRequests {
  return {
    graph: async (uri) => {
      const client = await clientFor(vscode.Uri.parse(uri));
      return client?.sendRequest(Requests.graph, { uri });
    },
  };
}

/** The page: draws what the extension posts, and ``first`` (a graph message) on its first
 * script run; pan with a drag, zoom with the wheel. */
export function page(nonce: string, first?: Record<string, unknown>): string {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'">
<style nonce="${nonce}">
  body { margin: 0; font: 12px var(--vscode-font-family); color: var(--vscode-foreground); background: var(--vscode-editor-background); overflow: hidden; }
  header { position: fixed; top: 0; left: 0; right: 0; z-index: 2; padding: 6px 10px; background: var(--vscode-sideBar-background, var(--vscode-editor-background)); border-bottom: 1px solid var(--vscode-panel-border, #8884); display: flex; gap: 10px; align-items: center; }
  header .run { opacity: .8 }
  #view { position: absolute; top: 34px; left: 0; right: 0; bottom: 0; cursor: grab; }
  #stage { position: absolute; transform-origin: 0 0; }
  svg { position: absolute; left: 0; top: 0; overflow: visible; }
  path.edge { fill: none; stroke: var(--vscode-descriptionForeground, #888); stroke-width: 1.5; }
  text.label { fill: var(--vscode-descriptionForeground, #888); font-size: 11px; paint-order: stroke; stroke: var(--vscode-editor-background, #fff); stroke-width: 4px; stroke-linejoin: round; }
  .node { position: absolute; box-sizing: border-box; border-radius: 8px; padding: 6px 8px; border: 2px solid #888; background: var(--vscode-editorWidget-background, #8881); cursor: pointer; }
  .node .name { font-weight: 600; font-size: 13px; }
  .node .summary { margin-top: 2px; opacity: .85 }
  .node .tags { position: absolute; right: 6px; top: 5px; display: flex; gap: 4px; }
  .tag { font-size: 10px; border-radius: 4px; padding: 0 4px; }
  .tag.stale { background: #b648c966; }
  .tag.spun-ok { background: #2e7d3266; } .tag.spun-failed { background: #c6282866; }
  .node .actions { position: absolute; left: 6px; right: 6px; bottom: 5px; display: none; gap: 3px; flex-wrap: nowrap; }
  .node:hover .actions, .node:focus-within .actions { display: flex; }
  .node button { font-size: 10px; padding: 1px 4px; white-space: nowrap; border: 0; border-radius: 3px; color: var(--vscode-button-foreground); background: var(--vscode-button-background); cursor: pointer; }
  .node[data-state="ok"] { border-color: #3fa84a; }
  .node[data-state="failed"] { border-color: #e5484d; }
  .node[data-state="running"] { border-color: #e2a400; animation: pulse 1.2s ease-in-out infinite; }
  .node[data-state="not-run"] { border-color: #8888; border-style: dashed; opacity: .75; }
  .node[data-stale="true"] { box-shadow: 0 0 0 2px #b648c9; }
  @keyframes pulse { 50% { box-shadow: 0 0 0 4px #e2a40055; } }
  #message { padding: 50px 16px; }
</style></head>
<body>
<header><strong id="flow">devd flow</strong><span class="run" id="run"></span></header>
<div id="view"><div id="stage"><svg id="edges"></svg></div><div id="message">Asking the daemon for the flow's graph…</div></div>
<script nonce="${nonce}">
(function () {
  const vscode = acquireVsCodeApi();
  const stamp = (name) => { document.body.dataset[name] = String(performance.timeOrigin + performance.now()); };
  stamp("startedAt"); // bench/editor_bench.py reads these (epoch ms)
  const view = document.getElementById("view"), stage = document.getElementById("stage");
  const svg = document.getElementById("edges"), message = document.getElementById("message");
  let scale = 1, dx = 0, dy = 0, drag = null;
  const apply = () => { stage.style.transform = "translate(" + dx + "px," + dy + "px) scale(" + scale + ")"; };
  view.addEventListener("wheel", (e) => {
    e.preventDefault();
    const k = Math.exp(-e.deltaY / 500), r = view.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    dx = x - (x - dx) * k; dy = y - (y - dy) * k; scale *= k; moved = true; apply();
  }, { passive: false });
  view.addEventListener("mousedown", (e) => { if (!e.target.closest(".node")) { drag = [e.clientX - dx, e.clientY - dy]; } });
  window.addEventListener("mousemove", (e) => { if (drag) { dx = e.clientX - drag[0]; dy = e.clientY - drag[1]; moved = true; apply(); } });
  window.addEventListener("mouseup", () => { drag = null; });
  const el = (tag, cls, text) => { const x = document.createElement(tag); if (cls) x.className = cls; if (text !== undefined) x.textContent = text; return x; };
  let fitted = false, moved = false, shown = null;
  const onScreen = (fn) => { if (document.readyState === "complete") fn(); else window.addEventListener("load", fn, { once: true }); };
  // Fit the view, but never below a readable size: a tall flow (50 steps) pans instead.
  function fit(g) {
    const r = view.getBoundingClientRect();
    scale = Math.max(Math.min(1, (r.width - 20) / Math.max(g.width, 1), (r.height - 20) / Math.max(g.height, 1)), 0.75);
    dx = Math.max((r.width - g.width * scale) / 2, 10); dy = 10; apply();
  }
  // The view resized (the card pane opened beside it): fit again, unless the user panned or zoomed.
  window.addEventListener("resize", () => { if (shown && !moved) fit(shown); });
  function draw(g) {
    shown = g;
    message.textContent = "";
    document.getElementById("flow").textContent = g.flow + "  " + g.file;
    const run = g.run;
    document.getElementById("run").textContent = run ? "run " + run.runId + " · " + run.status + (run.user ? " · " + run.user : "") : "no run yet: Run Flow (Ctrl+Alt+R) records one";
    for (const old of stage.querySelectorAll(".node")) old.remove();
    svg.replaceChildren();
    svg.setAttribute("width", g.width); svg.setAttribute("height", g.height);
    const ns = "http://www.w3.org/2000/svg";
    const defs = document.createElementNS(ns, "defs");
    defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="currentColor"></path></marker>';
    svg.appendChild(defs);
    for (const e of g.edges) {
      const p = document.createElementNS(ns, "path");
      let d;
      if (e.selfLoop) {
        const n = g.nodes.find((x) => x.step === e.from);
        const x = n.x + ${NODE_WIDTH}, y = n.y + 20;
        d = "M" + x + "," + y + " C" + (x + 50) + "," + (y - 10) + " " + (x + 50) + "," + (y + 44) + " " + x + "," + (y + 34);
      } else {
        d = e.points.map((pt, i) => (i ? "L" : "M") + pt.x + "," + pt.y).join(" ");
      }
      p.setAttribute("d", d); p.setAttribute("class", "edge"); p.setAttribute("marker-end", "url(#arrow)");
      p.setAttribute("data-from", e.from); p.setAttribute("data-to", e.to);
      svg.appendChild(p);
      if (e.label) {
        const t = document.createElementNS(ns, "text");
        const at = e.labelAt || (e.selfLoop ? { x: g.nodes.find((x) => x.step === e.from).x + ${NODE_WIDTH + 56}, y: g.nodes.find((x) => x.step === e.from).y + 40 } : e.points[Math.floor(e.points.length / 2)]);
        t.setAttribute("x", at.x); t.setAttribute("y", at.y); t.setAttribute("class", "label"); t.setAttribute("text-anchor", "middle");
        t.textContent = e.label; svg.appendChild(t);
      }
    }
    for (const n of g.nodes) {
      const box = el("div", "node");
      box.style.left = n.x + "px"; box.style.top = n.y + "px"; box.style.width = "${NODE_WIDTH}px"; box.style.height = "${NODE_HEIGHT}px";
      box.dataset.step = n.step; box.dataset.state = n.state; box.dataset.stale = String(!!n.stale);
      box.tabIndex = 0;
      // The node's context menu (package.json's webview/context entries get this object).
      box.dataset.vscodeContext = JSON.stringify({ webviewSection: "node", step: n.step, devdSplits: !!n.splits, devdStart: n.type === "start", preventDefaultContextMenuItems: true });
      box.title = n.step + " (" + n.type + "): " + n.summary + (n.stale ? "; its code changed since this run" : "");
      box.appendChild(el("div", "name", n.step));
      box.appendChild(el("div", "summary", n.summary));
      const tags = el("div", "tags");
      if (n.stale) tags.appendChild(el("span", "tag stale", "stale"));
      if (n.lastSpin) tags.appendChild(el("span", "tag spun-" + n.lastSpin, "spun " + n.lastSpin));
      box.appendChild(tags);
      const actions = el("div", "actions");
      for (const [action, label] of [["spin", "▶ Spin"], ["debug", "Debug"], ["resume", "Resume"], ["card", "Card"], ["split", "Split…"]]) {
        if (action === "resume" && n.type === "start") continue;
        if (action === "split" && !n.splits) continue;
        const b = el("button", "", label); b.dataset.action = action;
        b.title = { spin: "Spin " + n.step, debug: "Spin " + n.step + " under the debugger", resume: "Resume the run from " + n.step, card: "Open " + n.step + "'s card", split: "Spin one split of " + n.step + " (by index or input)" }[action];
        b.addEventListener("click", (ev) => { ev.stopPropagation(); vscode.postMessage({ type: "action", action, step: n.step }); });
        actions.appendChild(b);
      }
      box.appendChild(actions);
      box.addEventListener("click", () => vscode.postMessage({ type: "open", step: n.step }));
      stage.appendChild(box);
    }
    // When the graph was on screen (epoch ms): bench/editor_bench.py reads it.
    // VS Code shows a new page at its load event: a graph drawn by the first script run is on
    // screen after it.
    onScreen(() => requestAnimationFrame(() => stamp("drawnAt")));
    if (!fitted) {
      fitted = true;
      fit(g);
    }
  }
  // A live run's states (devd/runProgress): each node's state and line change in place.
  function states(m) {
    document.getElementById("run").textContent = "run " + m.runId + " · running";
    for (const s of m.steps) {
      const box = stage.querySelector('.node[data-step="' + CSS.escape(s.step) + '"]');
      if (!box) continue;
      box.dataset.state = s.state;
      box.querySelector(".summary").textContent = s.summary;
    }
  }
  function graph(m) { stamp("graphAt"); vscode.setState({ uri: m.uri }); draw(m); }
  window.addEventListener("message", (event) => {
    const m = event.data;
    if (m.type === "graph") graph(m);
    else if (m.type === "states") states(m);
    else if (m.type === "error") message.textContent = "devd: " + m.message;
  });
  // A new view's graph comes in the page when the daemon answered in time (FlowPanel.firstPage).
  const first = ${first ? scriptJson(first) : "null"};
  if (first) graph(first);
  vscode.postMessage({ type: "ready", drawn: !!first });
})();
</script></body></html>`;
}

/** JSON to put in a page's script: no `</script>` (nor `<!--`) can end or change it. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}
