/** The extension's settings, read in one place (documented in README.md). */

export type OpenOn = "firstSpin" | "everySpin" | "never";

export interface Settings {
  pythonPath: string;
  spinOnSave: boolean;
  memoryBudgetMB: number;
  runArgs: string[];
  previewOpenOn: OpenOn;
}

/** Settings whose change needs a new server process (the rest apply live). */
export const RESTART_KEYS = ["devd.pythonPath", "devd.memoryBudgetMB"];

type Getter = (key: string) => unknown;

const OPEN_ON: OpenOn[] = ["firstSpin", "everySpin", "never"];

/** Typed settings from a `section.get`-like getter; bad values fall back to defaults. */
export function readSettings(get: Getter): Settings {
  const python = get("pythonPath");
  const budget = Number(get("memoryBudgetMB") ?? 0);
  const runArgs = get("runArgs");
  const openOn = get("preview.openOn");
  return {
    pythonPath: typeof python === "string" ? python.trim() : "",
    spinOnSave: get("spinOnSave") === true,
    memoryBudgetMB: Number.isFinite(budget) && budget > 0 ? budget : 0,
    runArgs: Array.isArray(runArgs) ? runArgs.filter((a): a is string => typeof a === "string") : [],
    previewOpenOn: OPEN_ON.includes(openOn as OpenOn) ? (openOn as OpenOn) : "firstSpin",
  };
}

/** Environment for the server process: the budget reaches the daemon it starts. */
export function serverEnv(settings: Settings, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = { ...base };
  if (settings.memoryBudgetMB > 0) {
    env.DEVD_BUDGET_MB = String(settings.memoryBudgetMB);
  }
  return env;
}
