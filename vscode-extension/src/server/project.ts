/**
 * The project a flow belongs to, as devd/core/project.py defines it: the nearest directory
 * holding Metaflow's `.metaflow` store, else the nearest git root, else the flow's folder.
 * One language client (and one daemon) serves each project.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export function projectRoot(file: string, exists: (p: string) => boolean = fs.existsSync): string {
  const start = path.dirname(path.resolve(file));
  for (const marker of [".metaflow", ".git"]) {
    let current = start;
    for (;;) {
      if (exists(path.join(current, marker))) {
        return current;
      }
      const parent = path.dirname(current);
      if (parent === current) {
        break;
      }
      current = parent;
    }
  }
  return start;
}

/**
 * Might this Python source define a Metaflow flow? Decides where devd lights up (starts a
 * client); the daemon has the last word (no lenses, no spins for a file without a flow).
 * A subclass of a project's own FlowSpec base class still has `@step`s and imports metaflow.
 */
export function definesFlow(source: string): boolean {
  return /\bFlowSpec\b/.test(source) || (/\bmetaflow\b/.test(source) && /^\s*@step\b/m.test(source));
}
