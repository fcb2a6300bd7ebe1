/**
 * The daemon's JSON-RPC shapes (docs/protocol.md), generated from devd/lsp/models.py by
 * devd/lsp/tsgen.py: do not edit, run `make protocol-ts`.
 */

import { NotificationType, RequestType } from "vscode-jsonrpc";

/** One artifact as listed: its type and a short summary. */
export interface ArtifactRow {
  name: string;
  type: string;
  summary: string;
  sizeBytes?: number | null;
}

/** One artifact with its value's repr (containers cut, at most 2,000 characters). */
export interface ArtifactValue {
  name: string;
  type: string;
  summary: string;
  repr: string;
  sizeBytes?: number | null;
}

/** `devd/artifactValue`: one recorded artifact's value, read and rendered by the daemon (the runs explorer's pane; nothing is unpickled in the editor). */
export interface ArtifactValueParams {
  uri: string;
  pathspec: string;
  name: string;
  /** render the value's page for this pane */
  webview?: WebviewOptions | null;
}

/** `devd/artifactValue`: the value's view, and with `webview` its page (no script, its style by the pane's nonce, images as data: URIs); `ok` false with `error` for an unknown task or artifact. */
export interface ArtifactValueResult {
  ok: boolean;
  value?: ValueView | null;
  /** with `webview`: the page for the pane */
  html?: string | null;
  error?: SpinError | null;
}

/** `devd/artifacts`: the last spin's artifacts, and one value's repr with `name`. */
export interface ArtifactsParams {
  uri: string;
  step?: string | null;
  pathspec?: string | null;
  name?: string | null;
  spinIfMissing?: boolean | null;
}

/** `devd/artifacts`: `spinOk` and `error` say how the last spin went; `ok: false` with `error` when there is no such spin or artifact. */
export interface ArtifactsResult {
  ok: boolean;
  step: string;
  artifacts: ArtifactRow[];
  error: SpinError | null;
  spinOk?: boolean | null;
  originRunId?: string | null;
  value?: ArtifactValue | null;
}

/** `devd/cancel`: `all` (or nothing), a step name, `run`, or a work id. */
export interface CancelParams {
  target?: string | null;
}

/** The work ids `devd/cancel` stopped. */
export interface CancelResult {
  cancelled: number[];
}

/** A card of the spun task; `html` is left out for a client with `cardHtml: false`. */
export interface CardInfo {
  index: number;
  id: string | null;
  type: string | null;
  uuid?: string | null;
  html?: string | null;
}

/** `devd/card`: the last spin's cards and preview page. */
export interface CardParams {
  uri: string;
  step?: string | null;
  pathspec?: string | null;
  /** spin a step not spun yet first */
  spinIfMissing?: boolean | null;
  /** render the preview for this card pane */
  webview?: WebviewOptions | null;
}

/** `devd/card`. With `webview`: `{ok, step, preview, assets}` only. */
export interface CardResult {
  ok: boolean;
  step: string;
  cards?: CardInfo[] | null;
  spin?: SpinOutcome | null;
  /** the complete preview page */
  preview?: string | null;
  /** with `webview`: the card scripts carried in full */
  assets?: string[] | null;
  error?: SpinError | null;
}

/** `devd/cardUpdated`: a card's live update while its step runs (docs/cards.md). */
export interface CardUpdatedParams {
  uri: string;
  flow: string;
  step: string;
  card: unknown;
}

/** `devd/debugReady`: the debug spin's child listens for a DAP client (loopback). */
export interface DebugReadyParams {
  uri: string;
  step: string;
  host: string;
  port: number;
}

/** One edge: a switch's carries its case, a foreach's its variable. */
export interface GraphEdge {
  from: string;
  to: string;
  label: string | null;
}

/** One step of the graph: where it is, where it goes, how it fared. */
export interface GraphNodeInfo {
  step: string;
  /** start, linear, split, foreach, split-switch, join or end */
  type: string;
  /** 1-based line of the step's def */
  line: number;
  next: string[];
  /** ok, failed, running or not-run, in the run */
  state: string;
  /** the step's code changed since the run */
  stale: boolean;
  tasks: number;
  tasksOk: number;
  durationS: number | null;
  /** a foreach step's variable */
  foreach: string | null;
  /** a switch step's condition */
  condition: string | null;
  /** a switch step's case -> next step */
  cases: Record<string, string>;
  /** ok or failed: the step's last spin in this daemon */
  lastSpin: string | null;
  /** epoch seconds */
  lastSpinAt: number | null;
}

/** `devd/graph`: the flow's DAG with each step's state in a run. */
export interface GraphParams {
  uri: string;
  /** this run instead of the newest */
  runId?: string | null;
}

/** `devd/graph`; `ok` false with `error` for a file that is not a flow, an unknown run. */
export interface GraphResult {
  ok: boolean;
  flow: string | null;
  file: string | null;
  /** null: the flow has no run yet */
  run: RunInfo | null;
  nodes: GraphNodeInfo[];
  edges: GraphEdge[];
  error?: SpinError | null;
}

/** How the last spin of a step went. */
export interface LastSpin {
  flow: string;
  step: string;
  ok: boolean;
  durationMs: number;
}

/** `devd/log`: output of the requester's spin or run, as it happens. */
export interface LogParams {
  stream: "stdout" | "stderr";
  text: string;
  uri: string | null;
  step?: string | null;
}

/** The daemon process's resident size and glibc malloc arenas (null: cannot tell). */
export interface MemoryStats {
  rssBytes: number | null;
  mallocArenas: number | null;
  tuned: boolean;
}

/** A spin's preview page rendered for the requester's card pane. */
export interface PanePreview {
  html: string;
  /** the big card scripts this page carries in full */
  assets: string[];
  /** the pane's `version`, echoed */
  version: number | null;
}

/** The child process waiting for the next spin of that step. */
export interface PreparedChild {
  flow: string;
  step: string;
  pid: number;
}

/** `devd/resume`: Metaflow's resume, from `step` of run `originRunId`. */
export interface ResumeParams {
  uri: string;
  step?: string | null;
  originRunId?: string | number | null;
  args?: string[] | null;
  workDoneToken?: string | number | null;
}

/** A run of the flow, as Metaflow recorded it. */
export interface RunInfo {
  runId: string;
  /** ok, failed or running */
  status: string;
  /** epoch seconds */
  createdAt: number | null;
  /** epoch seconds */
  finishedAt: number | null;
  durationS: number | null;
  user: string | null;
  tags: string[];
}

/** `devd/run`: Metaflow's own `python FLOW run ARGS`. */
export interface RunParams {
  uri: string;
  args?: string[] | null;
  workDoneToken?: string | number | null;
}

/** `devd/runProgress`: every step's state in a running run, as its tasks start and end (the flow view's live nodes). */
export interface RunProgressParams {
  uri: string;
  flow: string;
  runId: string;
  steps: StepState[];
}

/** `devd/run` and `devd/resume`: how Metaflow's run went. */
export interface RunResult {
  ok: boolean;
  runId: string | null;
  returncode?: number | null;
  /** the run could not start */
  error?: SpinError | null;
  /** stopped by devd/cancel: not a failure */
  cancelled?: boolean | null;
}

/** A spin, run or resume in progress (`id`: for `devd/cancel`). */
export interface RunningWork {
  id: number;
  kind: string;
  flow: string;
  step: string | null;
  seconds: number;
}

/** `devd/runs`: the flow's recent runs, newest first. */
export interface RunsParams {
  uri: string;
  /** at most this many (default 20) */
  limit?: number | null;
}

/** `devd/runs`; `ok` false with `error` for a file that is not a flow. */
export interface RunsResult {
  ok: boolean;
  flow: string | null;
  runs: RunInfo[];
  error?: SpinError | null;
}

/** Why a request, a spin or a run failed: the one error shape of every devd method. */
export interface SpinError {
  type: string;
  /** one line */
  message: string;
  /** the file the error is in (a step's failure: the flow file) */
  file?: string | null;
  /** 1-based line in `file` */
  line?: number | null;
  traceback?: string;
}

/** The result of `devd/spin`, and the params of `devd/spinFinished`. */
export interface SpinOutcome {
  ok: boolean;
  flow: string | null;
  step: string | null;
  pathspec: string | null;
  persisted: boolean;
  durationMs: number;
  artifacts: ArtifactRow[];
  stdout: string;
  stderr: string;
  error: SpinError | null;
  nextSteps: string[];
  parents: string[];
  originRunId: string | null;
  notices: string[];
  timingsMs: Record<string, number>;
  cards: CardInfo[];
  recordedTask: string | null;
  /** present only when something is stale */
  stale?: StaleMark[] | null;
  /** a foreach body: the split spun, of how many */
  split?: SplitInfo | null;
  /** present when the step ran in another interpreter than the daemon's */
  environment?: StepEnvInfo | null;
  /** the spin was stopped (devd/cancel, or a newer spin of the step): not a failure */
  cancelled?: "user" | "superseded" | null;
  uri: string | null;
  /** in `devd/spinFinished` to a client that named its pane; null when rendering failed */
  preview?: PanePreview | null;
}

/** The params of `devd/spin`: its target and every option of a spin. */
export interface SpinParams {
  uri: string;
  /** a step name */
  step?: string | null;
  /** the 0-based cursor line: the step whose source holds it */
  line?: number | null;
  /** run/step, Flow/run/step or Flow/run/step/task */
  pathspec?: string | null;
  /** with step or line: the parents come from this run (the runs explorer's pinned run) */
  runId?: string | null;
  /** $/progress of parents downloading */
  workDoneToken?: string | number | null;
  /** the requester's card pane (null: none) */
  webview?: WebviewOptions | null;
  /** values that replace the parents' artifacts of those names */
  artifacts?: Record<string, unknown> | null;
  /** a .py file defining ARTIFACTS = {name: value} to override inputs */
  artifactsModule?: string | null;
  /** a Config from a file (repeatable) */
  config?: Record<string, string> | null;
  /** a Config's value as text, read by its parser (repeatable) */
  configValue?: Record<string, unknown> | null;
  /** store the spun task where Metaflow's inspect_spin('.') reads it */
  persist?: boolean | null;
  /** take parents from the last spins of the parent steps (daemon) */
  fromSpin?: boolean | null;
  /** wait for a debugger (DAP: VS Code, PyCharm, nvim-dap) on a loopback port, printed, then run the step under it */
  debug?: boolean | null;
  /** how long --debug waits for the debugger (default 120) */
  debugTimeout?: number | null;
  /** Metaflow's --environment (local, uv, pypi, conda...): the step runs in that environment's interpreter (default: what the parents' run used) */
  environment?: string | null;
  /** Metaflow's --datastore, for the step's Metaflow CLI */
  datastore?: string | null;
  /** Metaflow's --metadata, for the step's Metaflow CLI */
  metadata?: string | null;
  /** Metaflow's --with: add a decorator to the step (repeatable; a spin keeps those Metaflow's spin keeps) */
  decospecs?: string[] | null;
  /** a foreach body: which split to spin, 0-based (default: the one the recorded task took) */
  split?: number | null;
}

/** The split of a foreach body a spin took (`devd/spin`'s `split` picks another). */
export interface SplitInfo {
  index: number;
  count: number;
}

/** A parent whose code changed since the run the spin's parents come from. */
export interface StaleMark {
  step: string;
  reason: string;
}

/** `devd/stateChanged`: a spin started, a run finished, a flow file changed. */
export interface StateChangedParams {
  reason: "spinStarted" | "spinRefused" | "runFinished" | "resumeFinished" | "fileChanged" | "fileDeleted";
  uri?: string | null;
  flow?: string | null;
  file?: string | null;
  step?: string | null;
  /** each step's stale parents */
  stale?: Record<string, StaleMark[]> | null;
  /** the changed flow does not load (caught mid-write?); why a started spin was refused */
  error?: string | null;
  runId?: string | null;
  ok?: boolean | null;
}

/** `devd/status` takes nothing. */
export type StatusParams = Record<string, never>;

/** `devd/status`: what is warm, what runs, the daemon's memory. */
export interface StatusResult {
  root: string;
  pid: number;
  startedAt: number;
  warm: WarmTaskInfo[];
  warmBytes: number;
  budgetBytes: number;
  running: RunningWork[];
  flows: string[];
  lastSpins: LastSpin[];
  prepared: PreparedChild[];
  memory: MemoryStats;
  workers: WorkerInfo[];
}

/** Where a spin ran when it was not the daemon's interpreter (docs/usage.md, "Environments"): a warm worker of devd in the step's own environment. */
export interface StepEnvInfo {
  /** Metaflow's --environment (uv, pypi, conda) or the decorator that moved the step (`@venv_step`) */
  name: string;
  /** the interpreter the step ran in */
  python: string;
  /** its Python version (`3.11`; empty when unknown) */
  version: string;
  /** the pid of the warm worker that spun it */
  worker?: number | null;
}

/** One step's state in a running run (`devd/runProgress`). */
export interface StepState {
  step: string;
  /** running, ok, failed or not-run */
  state: string;
  tasks: number;
  tasksOk: number;
  durationS: number | null;
}

/** `devd/taskCard`: a recorded task's preview page with the cards Metaflow stored for it (the runs explorer's Open Card); answered as `devd/card` is. */
export interface TaskCardParams {
  uri: string;
  pathspec: string;
  /** render the preview for this card pane */
  webview?: WebviewOptions | null;
}

/** One task of a step in a run. */
export interface TaskInfo {
  pathspec: string;
  taskId: string;
  /** ok, failed or running */
  state: string;
  /** the foreach split it took */
  index: number | null;
  /** that split's input, as a short repr */
  input: string | null;
  durationS: number | null;
}

/** One stream's end: whole lines, at most 64,000 characters. */
export interface TaskLog {
  /** stdout or stderr */
  stream: string;
  text: string;
  /** lines in the whole stream */
  lines: number;
  /** lines before `text` */
  leftOut: number;
}

/** `devd/taskLogs`: the end of a recorded task's logs (`devd mcp`'s logs tool). */
export interface TaskLogsParams {
  uri: string;
  pathspec: string;
  /** stdout or stderr; both when absent */
  stream?: string | null;
  /** the last this many lines of each (default 200, at most 10,000) */
  tail?: number | null;
}

/** `devd/taskLogs`; `ok` false with `error` for an unknown task or stream. */
export interface TaskLogsResult {
  ok: boolean;
  pathspec: string | null;
  logs: TaskLog[];
  error?: SpinError | null;
}

/** `devd/task`: a recorded task's artifacts (the runs explorer). */
export interface TaskParams {
  uri: string;
  pathspec: string;
}

/** `devd/task`; `ok` false with `error` for an unknown task. */
export interface TaskResult {
  ok: boolean;
  pathspec: string | null;
  artifacts: ArtifactRow[];
  error?: SpinError | null;
}

/** `devd/tasks`: the tasks of one step in a run (the runs explorer). */
export interface TasksParams {
  uri: string;
  runId: string;
  step: string;
}

/** `devd/tasks`; `ok` false with `error` for an unknown run or step. */
export interface TasksResult {
  ok: boolean;
  tasks: TaskInfo[];
  error?: SpinError | null;
}

/** A numeric array's statistics, NaNs left out. */
export interface ValueStats {
  min: number;
  max: number;
  mean: number;
  /** over this many elements (the first ones of a huge array) */
  over: number;
  /** a float array's NaNs */
  nan?: number | null;
}

/** One artifact's value as the pane shows it: `kind` says which fields it has. */
export interface ValueView {
  name: string;
  pathspec: string;
  /** dataframe, array, image, json, text, repr, big (not loaded) or unreadable */
  kind: string;
  type: string;
  summary: string;
  /** as Metaflow stored it */
  storedBytes?: number | null;
  /** in memory, when known */
  sizeBytes?: number | null;
  shape?: number[] | null;
  /** an array's */
  dtype?: string | null;
  /** a numeric array's */
  stats?: ValueStats | null;
  /** a dataframe's [column, dtype] (at most 200) */
  dtypes?: string[][] | null;
  /** a dataframe's head: its columns (at most 20) */
  columns?: string[] | null;
  /** its rows' index labels (at most 20) */
  index?: string[] | null;
  /** its cells as text */
  rows?: string[][] | null;
  /** json, text, repr, array: at most 64,000 characters */
  text?: string | null;
  /** `text` is the start of a longer one */
  truncated?: boolean | null;
  /** the whole text's length, when truncated */
  textChars?: number | null;
  /** a string's length */
  chars?: number | null;
  /** an image's: image/png or image/jpeg */
  mime?: string | null;
  width?: number | null;
  height?: number | null;
  imageBytes?: number | null;
  /** the image, base64 (at most 4 MB; left out with `webview`) */
  data?: string | null;
}

/** A warm parent task: its size and how long it took to load. */
export interface WarmTaskInfo {
  pathspec: string;
  sizeBytes: number;
  artifacts: number;
  loadSeconds: number;
}

/** A card pane previews are rendered for (docs/protocol.md, `devd/card`). */
export interface WebviewOptions {
  nonce: string;
  cspSource?: string | null;
  /** the big card scripts the pane's page holds */
  assets?: string[] | null;
  /** the pane's page version, echoed in `preview` */
  version?: number | null;
}

/** A warm worker of devd in a step's own interpreter (docs/usage.md, "Environments"). */
export interface WorkerInfo {
  /** Metaflow's --environment, or the decorator that moved the step */
  environment: string;
  python: string;
  pid: number;
  /** the parents it keeps warm (counted in the daemon's budget) */
  warmBytes: number;
  /** seconds since its last spin (it stops itself when idle) */
  idleS: number;
  spins: number;
}

export const Methods = {
  spin: "devd/spin",
  run: "devd/run",
  resume: "devd/resume",
  cancel: "devd/cancel",
  status: "devd/status",
  card: "devd/card",
  artifacts: "devd/artifacts",
  graph: "devd/graph",
  runs: "devd/runs",
  tasks: "devd/tasks",
  task: "devd/task",
  artifactValue: "devd/artifactValue",
  taskCard: "devd/taskCard",
  taskLogs: "devd/taskLogs",
  log: "devd/log",
  spinFinished: "devd/spinFinished",
  stateChanged: "devd/stateChanged",
  cardUpdated: "devd/cardUpdated",
  debugReady: "devd/debugReady",
  runProgress: "devd/runProgress",
} as const;

/** Each request, typed: `sendRequest(Requests.x, params)` checks both ends. */
export const Requests = {
  spin: new RequestType<SpinParams, SpinOutcome, void>(Methods.spin),
  run: new RequestType<RunParams, RunResult, void>(Methods.run),
  resume: new RequestType<ResumeParams, RunResult, void>(Methods.resume),
  cancel: new RequestType<CancelParams, CancelResult, void>(Methods.cancel),
  status: new RequestType<StatusParams, StatusResult, void>(Methods.status),
  card: new RequestType<CardParams, CardResult, void>(Methods.card),
  artifacts: new RequestType<ArtifactsParams, ArtifactsResult, void>(Methods.artifacts),
  graph: new RequestType<GraphParams, GraphResult, void>(Methods.graph),
  runs: new RequestType<RunsParams, RunsResult, void>(Methods.runs),
  tasks: new RequestType<TasksParams, TasksResult, void>(Methods.tasks),
  task: new RequestType<TaskParams, TaskResult, void>(Methods.task),
  artifactValue: new RequestType<ArtifactValueParams, ArtifactValueResult, void>(Methods.artifactValue),
  taskCard: new RequestType<TaskCardParams, CardResult, void>(Methods.taskCard),
  taskLogs: new RequestType<TaskLogsParams, TaskLogsResult, void>(Methods.taskLogs),
} as const;

/** Each notification, typed: `onNotification(Notifications.x, (p) => ...)`. */
export const Notifications = {
  log: new NotificationType<LogParams>(Methods.log),
  spinFinished: new NotificationType<SpinOutcome>(Methods.spinFinished),
  stateChanged: new NotificationType<StateChangedParams>(Methods.stateChanged),
  cardUpdated: new NotificationType<CardUpdatedParams>(Methods.cardUpdated),
  debugReady: new NotificationType<DebugReadyParams>(Methods.debugReady),
  runProgress: new NotificationType<RunProgressParams>(Methods.runProgress),
} as const;
