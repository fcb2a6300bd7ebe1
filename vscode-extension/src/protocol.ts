/**
 * The daemon's JSON-RPC shapes (docs/protocol.md), as the extension uses them.
 * Hand-written for now; the daemon is the source of truth.
 */

export interface SpinError {
  type: string;
  message: string;
  file?: string | null;
  line?: number | null;
  traceback?: string;
}

export interface StaleMark {
  step: string;
  reason: string;
}

export interface SpinResult {
  ok: boolean;
  uri: string | null;
  flow: string | null;
  step: string | null;
  durationMs: number;
  error: SpinError | null;
  stale?: StaleMark[];
  cards: { index: number; id?: string | null; type: string; uuid?: string | null }[];
  nextSteps?: string[];
  originRunId?: string | null;
  /** In `devd/spinFinished` to a client whose pane is known: that pane's preview page. */
  preview?: PanePreview | null;
}

/** A card pane a preview is rendered for (`webview` of `devd/spin` and `devd/card`). */
export interface WebviewOptions {
  nonce: string;
  cspSource?: string;
  /** The big card scripts the pane's page holds (left out of the preview). */
  assets?: string[];
  /** The pane's page version: a pushed preview of another version is not for this page. */
  version?: number;
}

export interface PanePreview {
  html: string;
  assets: string[];
  version: number | null;
}

export interface SpinParams {
  uri: string;
  step?: string;
  line?: number;
  pathspec?: string;
  artifactsModule?: string;
  fromSpin?: boolean;
  /** The requester's card pane (null: none open): later spinFinished carry its preview. */
  webview?: WebviewOptions | null;
  /** Run the step under debugpy; the requester gets `devd/debugReady` (docs/debugging.md). */
  debug?: boolean;
  /** Seconds a debug spin waits for a debugger to attach (default 120). */
  debugTimeout?: number;
}

/** Where the debug spin's child listens for a DAP client (loopback). */
export interface DebugReadyParams {
  uri: string;
  step: string;
  host: string;
  port: number;
}

export interface CardResult {
  ok: boolean;
  step: string;
  preview?: string;
  /** With `webview`: the big card scripts this preview carries in full (the page keeps them). */
  assets?: string[];
  error?: string;
}

export interface RunResult {
  ok: boolean;
  runId: string | null;
  returncode?: number;
  error?: string;
}

export interface StatusResult {
  root: string;
  pid: number;
  warm: { pathspec: string; sizeBytes: number }[];
  warmBytes: number;
  budgetBytes: number;
  running: { id: string; kind: string; flow: string; step?: string; seconds: number }[];
  flows: string[];
  lastSpins: { flow: string; step: string; ok: boolean; durationMs: number }[];
  prepared?: { flow: string; step: string; pid: number }[];
}

export interface LogParams {
  stream: "stdout" | "stderr";
  text: string;
  uri?: string;
  step?: string;
}

export interface CardUpdatedParams {
  uri: string;
  flow: string;
  step: string;
  card: unknown;
}

export interface StateChangedParams {
  reason: string;
  uri?: string;
  /** For `fileChanged`: each step's stale parents. */
  stale?: Record<string, StaleMark[]>;
  error?: string;
}

export const Methods = {
  spin: "devd/spin",
  run: "devd/run",
  resume: "devd/resume",
  cancel: "devd/cancel",
  status: "devd/status",
  card: "devd/card",
  log: "devd/log",
  spinFinished: "devd/spinFinished",
  stateChanged: "devd/stateChanged",
  cardUpdated: "devd/cardUpdated",
  debugReady: "devd/debugReady",
} as const;
