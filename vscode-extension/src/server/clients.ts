/**
 * One language client per project, each running `devd serve --stdio` (which joins or
 * starts the project's daemon), started lazily on the first flow file of that project.
 */
import * as vscode from "vscode";
import type { RequestType } from "vscode-jsonrpc";
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";

import { readSettings, serverEnv, type Settings } from "../config/settings";
import { probeDevd } from "../python/install";
import type { Interpreter } from "../python/interpreter";
import { CrashPolicy, onClientClosed } from "./crashPolicy";
import { LogRouter } from "./logLines";
import { projectRoot } from "./project";

export type DaemonState =
  | { kind: "starting"; root: string }
  | { kind: "ready"; root: string }
  | { kind: "stopped"; root: string }
  | { kind: "failed"; root: string; message: string }
  | { kind: "notInstalled"; root: string; python: string; detail: string };

export interface ClientHooks {
  /** Which interpreter to use (resolved anew at every start). */
  interpreter(resource: vscode.Uri): Promise<Interpreter>;
  /** devd is not importable there: offer to install it; true when it now is. */
  offerInstall(python: string, detail: string): Promise<boolean>;
  /** A client is starting with this interpreter. */
  started?(python: Interpreter): void;
  state(state: DaemonState): void;
}

interface Entry {
  root: string;
  /** A file of the project, for resource-scoped settings and restarts. */
  resource: vscode.Uri;
  client?: LanguageClient;
  starting?: Promise<LanguageClient | undefined>;
  policy: CrashPolicy;
  /** Its client is being stopped on purpose: a close is not a crash to restart from. */
  stopping?: boolean;
}

export class DaemonClients implements vscode.Disposable {
  private readonly entries = new Map<string, Entry>();
  private readonly probed = new Map<string, boolean>();
  /** Interpreters whose install offer was turned down: not asked again until a restart. */
  private readonly declined = new Set<string>();

  /** The language client's own lines (its trace, its errors), each at its level. */
  private readonly clientLog: LogRouter;
  /** Who registers notification handlers on each new client (onClient). */
  private readonly attachers: ((client: LanguageClient, root: string) => void)[] = [];

  constructor(
    private readonly output: vscode.LogOutputChannel,
    private readonly hooks: ClientHooks,
  ) {
    this.clientLog = new LogRouter(output);
  }

  /** The running client of `uri`'s project, started if needed; undefined if it cannot start. */
  async clientFor(uri: vscode.Uri): Promise<LanguageClient | undefined> {
    const root = projectRoot(uri.fsPath);
    let entry = this.entries.get(root);
    if (!entry) {
      entry = { root, resource: uri, policy: new CrashPolicy(1) };
      this.entries.set(root, entry);
    }
    if (entry.client && entry.client.state === State.Running) {
      return entry.client;
    }
    if (!entry.starting) {
      const current = entry;
      current.starting = this.start(current, uri).finally(() => {
        current.starting = undefined;
      });
    }
    return entry.starting;
  }

  /** Register notification handlers on every client started from now on. */
  onClient(attach: (client: LanguageClient, root: string) => void): void {
    this.attachers.push(attach);
  }

  /** A typed request to the daemon of `uri`'s project; undefined when it cannot start. */
  async request<P, R>(uri: string, type: RequestType<P, R, void>, params: P): Promise<R | undefined> {
    const client = await this.clientFor(vscode.Uri.parse(uri));
    return client?.sendRequest(type, params);
  }

  /** Every client that is running now (for broadcasts such as Cancel). */
  running(): { root: string; client: LanguageClient }[] {
    const found: { root: string; client: LanguageClient }[] = [];
    for (const entry of this.entries.values()) {
      if (entry.client && entry.client.state === State.Running) {
        found.push({ root: entry.root, client: entry.client });
      }
    }
    return found;
  }

  roots(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Stop every client, run `between` (Restart Daemon stops the daemons there), then start
   * one client again per project that had one (after a settings or interpreter change).
   * The clients are stopped first, so a daemon going away is no crash for them to restart
   * from: each project ends with exactly one client.
   */
  async restartAll(why: string, between?: () => Promise<void>): Promise<void> {
    this.probed.clear();
    this.declined.clear();
    const entries = [...this.entries.values()];
    this.output.info(`restarting (${why})`);
    for (const entry of entries) {
      entry.stopping = true;
    }
    try {
      await Promise.all(entries.map(async (e) => {
        await e.starting; // a start under way finishes first, then is stopped like the rest
        await this.stop(e);
      }));
      await between?.();
    } finally {
      for (const entry of entries) {
        entry.stopping = false;
        entry.policy.reset();
      }
    }
    for (const entry of entries) {
      void this.clientFor(entry.resource);
    }
  }

  private async stop(entry: Entry): Promise<void> {
    const client = entry.client;
    entry.client = undefined;
    if (client && client.state !== State.Stopped) {
      try {
        await client.stop(2000);
      } catch (err) {
        this.output.warn(`stopping the client of ${entry.root}: ${String(err)}`);
      }
    }
  }

  private async start(entry: Entry, resource: vscode.Uri): Promise<LanguageClient | undefined> {
    const { root } = entry;
    this.hooks.state({ kind: "starting", root });
    const settings: Settings = readSettings((k) => vscode.workspace.getConfiguration("devd", resource).get(k));
    const python = await this.hooks.interpreter(resource);
    const env = serverEnv(settings, process.env);
    if (!(await this.ensureDevd(python.path, env, root))) {
      return undefined;
    }
    this.output.info(`${root}: starting devd serve with ${python.path} (${python.source})`);
    this.hooks.started?.(python);
    const serverOptions: ServerOptions = {
      command: python.path,
      args: ["-m", "devd.cli", "serve", "--stdio", "--root", root],
      options: { cwd: root, env },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file", language: "python", pattern: `${globEscape(root)}/**/*.py` }],
      outputChannel: this.clientLog,
      // The pane takes cards from devd/card: spin results need not carry ~1 MB of HTML per card.
      initializationOptions: { spinOnSave: settings.spinOnSave, cardHtml: false },
      synchronize: { configurationSection: "devd" },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => {
          const decision = onClientClosed({ current: entry.client === client, stopping: entry.stopping === true }, entry.policy);
          if (decision === "ignore") {
            return { action: CloseAction.DoNotRestart, handled: true };
          }
          if (decision === "restart") {
            this.output.warn(`${root}: the daemon connection closed; restarting it once`);
            this.hooks.state({ kind: "starting", root });
            return { action: CloseAction.Restart, handled: true };
          }
          const message = "the devd daemon stopped again after a restart";
          this.output.error(`${root}: ${message}; not restarting (devd: Restart Daemon tries again)`);
          this.hooks.state({ kind: "failed", root, message });
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
    };
    const client = new LanguageClient("devd", "devd", serverOptions, clientOptions);
    client.onDidChangeState((e) => {
      if (e.newState === State.Running) {
        this.hooks.state({ kind: "ready", root });
      }
    });
    for (const attach of this.attachers) {
      attach(client, root);
    }
    entry.client = client;
    try {
      await client.start();
    } catch (err) {
      entry.client = undefined;
      const message = `devd did not start with ${python.path}: ${String(err)}`;
      this.output.error(`${root}: ${message}`);
      this.hooks.state({ kind: "failed", root, message });
      return undefined;
    }
    return client;
  }

  private async ensureDevd(python: string, env: NodeJS.ProcessEnv, root: string): Promise<boolean> {
    if (this.probed.get(python)) {
      return true;
    }
    const probe = await probeDevd(python, env);
    if (probe.ok) {
      this.probed.set(python, true);
      return true;
    }
    this.output.warn(`devd is not importable by ${python}: ${probe.detail}`);
    this.hooks.state({ kind: "notInstalled", root, python, detail: probe.detail });
    if (this.declined.has(python)) {
      return false; // the status bar says so; Restart Daemon or a new interpreter asks again
    }
    if (await this.hooks.offerInstall(python, probe.detail)) {
      this.probed.set(python, true);
      return true;
    }
    this.declined.add(python);
    return false;
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => this.stop(e)));
    this.entries.clear();
  }
}

/** A directory as a literal glob prefix (brackets and braces in folder names are rare but real). */
function globEscape(dir: string): string {
  return dir.replace(/\\/g, "/").replace(/[[\]{}*?]/g, (c) => `[${c}]`);
}
