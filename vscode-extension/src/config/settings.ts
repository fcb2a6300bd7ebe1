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

/** Metaflow's top-level options a spin takes, as `devd.runArgs` gives them to runs. */
export interface SpinTopLevel {
  environment?: string;
  datastore?: string;
  metadata?: string;
  decospecs?: string[];
}

/**
 * The options of `devd.runArgs` that say where a step runs (`--environment`, `--datastore`,
 * `--metadata`, `--with`, as `--opt=value` or `--opt value`): one setting for runs and
 * spins, so a flow run with `--environment=pypi` is spun in that environment too.
 */
export function spinTopLevel(runArgs: string[]): SpinTopLevel {
  const out: SpinTopLevel = {};
  for (let i = 0; i < runArgs.length; i++) {
    const arg = runArgs[i];
    const match = /^--(environment|datastore|metadata|with)(?:=(.*))?$/.exec(arg);
    if (!match) {
      continue;
    }
    const value = match[2] ?? runArgs[i + 1];
    if (match[2] === undefined) {
      i += 1;
    }
    if (value === undefined || value === "") {
      continue;
    }
    if (match[1] === "with") {
      out.decospecs = [...(out.decospecs ?? []), value];
    } else {
      out[match[1] as "environment" | "datastore" | "metadata"] = value;
    }
  }
  return out;
}
