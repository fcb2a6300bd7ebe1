/**
 * A stub of the `vscode` module for unit tests (esbuild aliases `vscode` to this file).
 * It records what the extension asks of the editor; `reset()` clears it between tests.
 */
export const recorded = {
  warnings: [] as string[],
  infos: [] as string[],
  panels: [] as FakePanel[],
  shownDocuments: [] as { path: string; line: number }[],
  activeEditor: undefined as unknown,
  debugSessions: [] as unknown[],
  debugStarts: true,
  errors: [] as { message: string; items: string[] }[],
  /** The button the user picks on the next message with buttons. */
  pick: undefined as string | undefined,
  commands: [] as unknown[][],
  quickPicks: [] as string[][],
};

export function reset(): void {
  recorded.warnings.length = 0;
  recorded.infos.length = 0;
  recorded.panels.length = 0;
  recorded.shownDocuments.length = 0;
  recorded.activeEditor = undefined;
  recorded.debugSessions.length = 0;
  recorded.debugStarts = true;
  recorded.errors.length = 0;
  recorded.pick = undefined;
  recorded.commands.length = 0;
  recorded.quickPicks.length = 0;
}

export class EventEmitter<T> {
  private listeners: ((e: T) => void)[] = [];
  event = (listener: (e: T) => void) => {
    this.listeners.push(listener);
    return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== listener)) };
  };
  fire(e: T): void {
    this.listeners.forEach((l) => l(e));
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly fsPath: string,
  ) {}
  static file(p: string): Uri {
    return new Uri("file", p);
  }
  static parse(s: string): Uri {
    return s.startsWith("file://") ? new Uri("file", decodeURIComponent(s.slice(7))) : new Uri("other", s);
  }
  get path(): string {
    return this.fsPath;
  }
  toString(): string {
    return `file://${this.fsPath}`;
  }
}

export class Range {
  constructor(
    readonly startLine: number,
    readonly startCharacter: number,
    readonly endLine: number,
    readonly endCharacter: number,
  ) {}
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export enum ViewColumn {
  Active = -1,
  Beside = -2,
  One = 1,
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export class FakePanel {
  title = "";
  visible = true;
  disposed = false;
  revealed = 0;
  htmlSets: string[] = [];
  posted: unknown[] = [];
  private readonly disposeEmitter = new EventEmitter<void>();
  private readonly messageEmitter = new EventEmitter<unknown>();
  private readonly viewStateEmitter = new EventEmitter<void>();
  onDidDispose = this.disposeEmitter.event;
  onDidChangeViewState = this.viewStateEmitter.event;
  webview = {
    cspSource: "vscode-webview://stub",
    onDidReceiveMessage: this.messageEmitter.event,
    postMessage: async (message: unknown) => {
      this.posted.push(message);
      return true;
    },
    set html(value: string) {
      panelOf(this).htmlSets.push(value);
    },
    get html(): string {
      const sets = panelOf(this).htmlSets;
      return sets[sets.length - 1] ?? "";
    },
  };
  constructor(
    readonly viewType: string,
    readonly column: unknown,
    readonly options: unknown,
  ) {
    webviews.set(this.webview, this);
  }
  reveal(): void {
    this.revealed += 1;
  }
  dispose(): void {
    this.disposed = true;
    this.disposeEmitter.fire();
  }
  /** The user moves another tab over the pane (or back). */
  setVisible(visible: boolean): void {
    this.visible = visible;
    this.viewStateEmitter.fire();
  }
  /** The page posts a message to the extension. */
  receive(message: unknown): void {
    this.messageEmitter.fire(message);
  }
}

const webviews = new WeakMap<object, FakePanel>();
function panelOf(webview: object): FakePanel {
  const panel = webviews.get(webview);
  if (!panel) {
    throw new Error("unknown webview");
  }
  return panel;
}

export const window = {
  createWebviewPanel(viewType: string, _title: string, column: unknown, options: unknown): FakePanel {
    const panel = new FakePanel(viewType, column, options);
    recorded.panels.push(panel);
    return panel;
  },
  async showWarningMessage(message: string): Promise<undefined> {
    recorded.warnings.push(message);
    return undefined;
  },
  async showErrorMessage(message: string, ...items: string[]): Promise<string | undefined> {
    recorded.errors.push({ message, items });
    return recorded.pick;
  },
  async showQuickPick<T extends { label: string }>(items: T[]): Promise<T | undefined> {
    recorded.quickPicks.push(items.map((i) => i.label));
    return items.find((i) => i.label === recorded.pick);
  },
  async showInformationMessage(message: string): Promise<undefined> {
    recorded.infos.push(message);
    return undefined;
  },
  async showTextDocument(doc: { path: string }, options: { selection: Range }): Promise<void> {
    recorded.shownDocuments.push({ path: doc.path, line: options.selection.startLine });
  },
  get activeTextEditor(): unknown {
    return recorded.activeEditor;
  },
  tabGroups: {
    all: [] as { viewColumn: number; tabs: { input: unknown }[] }[],
    onDidChangeTabs: () => ({ dispose: () => undefined }),
  },
};

export const workspace = {
  async openTextDocument(uri: Uri): Promise<unknown> {
    const editor = recorded.activeEditor as { document?: { uri: Uri } } | undefined;
    if (editor?.document && editor.document.uri.fsPath === uri.fsPath) {
      return editor.document;
    }
    return { path: uri.fsPath, uri, lineCount: 100, languageId: "python", isDirty: false };
  },
  getConfiguration() {
    return { get: () => undefined };
  },
  getWorkspaceFolder(): undefined {
    return undefined;
  },
};

export const commands = {
  async executeCommand(...args: unknown[]): Promise<unknown> {
    recorded.commands.push(args);
    return undefined;
  },
};

export const debug = {
  async startDebugging(_folder: unknown, configuration: unknown): Promise<boolean> {
    recorded.debugSessions.push(configuration);
    return recorded.debugStarts;
  },
};

export class DebugAdapterServer {
  constructor(
    readonly port: number,
    readonly host?: string,
  ) {}
}
