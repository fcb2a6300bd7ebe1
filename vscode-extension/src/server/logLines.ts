/**
 * Text for the devd output channel (a LogOutputChannel: it stamps and levels each line
 * itself). Pure: unit-tested. The language client's own "[Error - 2:59:48 AM] " prefix
 * becomes the line's level (errors and warnings; the rest, its trace included, info), blank
 * lines go, and each spin gets one header line.
 */
import type * as vscode from "vscode";

export type Level = "trace" | "info" | "warn" | "error";

export interface LogLine {
  level: Level;
  message: string;
}

const CLIENT_PREFIX = /^\[(Trace|Debug|Info|Warn|Error)\s*-\s*[0-9:]+(?:\s*[AP]M)?\]\s*/i;

export function logLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (!line.trim()) {
      continue;
    }
    const prefix = CLIENT_PREFIX.exec(line);
    if (prefix) {
      const kind = prefix[1].toLowerCase();
      // The JSON-RPC trace shows when devd.trace.server asks for it (that setting is its
      // filter), at the channel's default level: not hidden again below "info".
      const level: Level = kind === "error" ? "error" : kind === "warn" ? "warn" : "info";
      const message = line.slice(prefix[0].length);
      if (message.trim()) {
        out.push({ level, message });
      }
    } else {
      out.push({ level: "info", message: line });
    }
  }
  return out;
}

/** `spin train ok 120 ms`, `spin train failed (ValueError) 7 ms`, `spin train cancelled`. */
export function spinHeader(step: string, end: string, durationMs: number, errorType?: string): string {
  if (end === "cancelled") {
    return `spin ${step} cancelled`;
  }
  const why = end === "failed" && errorType ? ` (${errorType})` : "";
  return `spin ${step} ${end}${why} ${Math.round(durationMs)} ms`;
}

/** `run 4/4 steps ok (flow.py, run 17)`, `resume 2/5 steps failed (flow.py, run 18)`. */
export function runHeader(kind: string, file: string, end: string, steps: string, runId?: string | null): string {
  return `${kind} ${steps ? `${steps} ` : ""}${end} (${file}${runId ? `, run ${runId}` : ""})`;
}

/**
 * An OutputChannel for the language client and the extension's own lines that writes to a
 * LogOutputChannel line by line at each line's level (partial lines wait for their end).
 */
export class LogRouter implements vscode.OutputChannel {
  private partial = "";

  constructor(private readonly log: vscode.LogOutputChannel) {}

  get name(): string {
    return this.log.name;
  }

  append(value: string): void {
    const text = this.partial + value;
    const cut = text.lastIndexOf("\n");
    if (cut < 0) {
      this.partial = text;
      return;
    }
    this.partial = text.slice(cut + 1);
    for (const line of logLines(text.slice(0, cut))) {
      this.log[line.level](line.message);
    }
  }

  appendLine(value: string): void {
    this.append(`${value}\n`);
  }

  replace(value: string): void {
    this.log.replace(value);
  }

  clear(): void {
    this.log.clear();
  }

  show(preserveFocus?: boolean): void;
  show(column?: vscode.ViewColumn, preserveFocus?: boolean): void;
  show(a?: unknown, b?: boolean): void {
    this.log.show(typeof a === "boolean" ? a : b);
  }

  hide(): void {
    this.log.hide();
  }

  dispose(): void {
    // the LogOutputChannel is the extension's; it disposes it
  }
}
