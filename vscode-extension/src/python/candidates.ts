/**
 * The interpreters "devd: Choose Interpreter…" offers (pure: unit-tested): the Python
 * extension's environments when it is installed, the workspace's virtual environments,
 * then python3; the current one first and marked, each path once.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export interface Candidate {
  path: string;
  /** Where it was found: "Python extension", "workspace venv", "default". */
  source: string;
  current: boolean;
}

export function interpreterCandidates(
  current: { path: string; source: string },
  fromPythonExtension: string[],
  workspaceVenvs: string[],
): Candidate[] {
  const seen = new Set<string>();
  const out: Candidate[] = [];
  const add = (p: string, source: string) => {
    if (p && !seen.has(p)) {
      seen.add(p);
      out.push({ path: p, source, current: p === current.path });
    }
  };
  add(current.path, current.source);
  fromPythonExtension.forEach((p) => add(p, "Python extension"));
  workspaceVenvs.forEach((p) => add(p, "workspace venv"));
  add("python3", "default");
  return out;
}

/** The python of each virtual environment (a dir with pyvenv.cfg) in `folder` or one level below. */
export function venvsIn(folder: string, exists: (p: string) => boolean = fs.existsSync): string[] {
  const found: string[] = [];
  const check = (dir: string) => {
    const python = process.platform === "win32" ? path.join(dir, "Scripts", "python.exe") : path.join(dir, "bin", "python");
    if (exists(path.join(dir, "pyvenv.cfg")) && exists(python)) {
      found.push(python);
    }
  };
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(folder, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name === "node_modules") {
      continue;
    }
    const dir = path.join(folder, entry.name);
    check(dir);
    let inner: fs.Dirent[] = [];
    try {
      inner = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    inner.filter((e) => e.isDirectory() && /^\.?(venv|env|virtualenv)$/.test(e.name)).forEach((e) => check(path.join(dir, e.name)));
  }
  return found;
}
