/** The status bar's words, from what the extension knows (pure: unit-tested). */

export interface StatusFacts {
  daemon: "starting" | "ready" | "stopped" | "failed" | "notInstalled" | "idle";
  message?: string;
  lastSpin?: { step: string; ok: boolean; durationMs: number; cancelled?: boolean };
  warmBytes?: number;
  budgetBytes?: number;
  stale?: string[];
  running?: string; // e.g. "run 3/5 steps"
  /** devd's warm workers in the steps' own interpreters (@pypi, @conda, uv...). */
  workers?: { environment: string; python: string; pid: number; warmBytes: number }[];
}

export interface StatusView {
  text: string;
  tooltip: string;
  severity: "normal" | "warning" | "error";
}

export function humanBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) {
    return "?";
  }
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

export function formatStatus(f: StatusFacts): StatusView {
  const memory = f.warmBytes !== undefined ? `${humanBytes(f.warmBytes)}/${humanBytes(f.budgetBytes)}` : "";
  const tips: string[] = [];
  if (f.daemon === "failed") {
    return { text: "$(error) devd: daemon stopped", tooltip: `${f.message ?? "the daemon stopped"} — click for the log`, severity: "error" };
  }
  if (f.daemon === "notInstalled") {
    return { text: "$(warning) devd: not installed", tooltip: f.message ?? "devd is not importable by the interpreter", severity: "error" };
  }
  if (f.daemon === "starting") {
    return { text: "$(sync~spin) devd", tooltip: "devd: starting the project's daemon", severity: "normal" };
  }
  let text = "$(zap) devd";
  let severity: StatusView["severity"] = "normal";
  if (f.running) {
    text = `$(sync~spin) devd: ${f.running}`;
  } else if (f.lastSpin) {
    const s = f.lastSpin;
    const icon = s.cancelled ? "$(circle-slash)" : s.ok ? "$(check)" : "$(error)";
    const what = s.cancelled ? "cancelled" : s.ok ? `${Math.round(s.durationMs)} ms` : "failed";
    text = `${icon} devd: ${s.step} ${what}`;
    tips.push(`last spin: ${s.step}, ${s.cancelled ? "cancelled" : s.ok ? "succeeded" : "failed"} after ${s.durationMs.toFixed(1)} ms`);
  }
  if (memory) {
    // the text stays short (`devd: train 96 ms`); the memory is in the tooltip
    tips.push(`warm parents: ${humanBytes(f.warmBytes)} of a ${humanBytes(f.budgetBytes)} budget`);
  }
  for (const w of f.workers ?? []) {
    tips.push(`worker: ${w.environment} in ${w.python} (pid ${w.pid}, ${humanBytes(w.warmBytes)} warm)`);
  }
  if (f.stale && f.stale.length) {
    text = `$(warning) ${text.replace(/^\$\([^)]*\) /, "")} · stale`;
    tips.push(...f.stale.map((s) => `stale: ${s}`));
    severity = "warning";
  }
  tips.push("click: devd daemon status");
  return { text, tooltip: tips.join("\n"), severity };
}
