/**
 * Is devd importable by the chosen interpreter, and installing the devd wheel that ships
 * inside the .vsix into it when it is not (the user is asked first).
 */
import { spawn } from "node:child_process";

export interface ProbeResult {
  ok: boolean;
  /** devd's version when importable; otherwise why not (one line). */
  detail: string;
}

/** Runs `python -c "import devd"` (a few hundred ms; cached by the caller per interpreter). */
export function probeDevd(python: string, env: NodeJS.ProcessEnv): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let out = "";
    let child;
    try {
      child = spawn(python, ["-c", "import devd, sys; sys.stdout.write(devd.__version__)"], { env });
    } catch (err) {
      resolve({ ok: false, detail: `cannot start ${python}: ${String(err)}` });
      return;
    }
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", (err: NodeJS.ErrnoException) => {
      const why = err.code === "ENOENT" ? `${python} not found` : `cannot start ${python}: ${err.message}`;
      resolve({ ok: false, detail: why });
    });
    child.on("close", (code: number | null) => {
      if (code === 0) {
        resolve({ ok: true, detail: out.trim() });
      } else {
        const lines = out.trim().split("\n");
        resolve({ ok: false, detail: lines[lines.length - 1] || `exit code ${code}` });
      }
    });
  });
}

/** `python -m pip install WHEEL`, output streamed to `log`; resolves with pip's exit code. */
export function installWheel(
  python: string,
  wheel: string,
  env: NodeJS.ProcessEnv,
  log: (text: string) => void,
): Promise<number> {
  return new Promise((resolve) => {
    const args = ["-m", "pip", "install", wheel];
    log(`$ ${python} ${args.join(" ")}\n`);
    const child = spawn(python, args, { env });
    child.stdout.on("data", (d: Buffer) => log(d.toString()));
    child.stderr.on("data", (d: Buffer) => log(d.toString()));
    child.on("error", (err) => {
      log(`${String(err)}\n`);
      resolve(127);
    });
    child.on("close", (code: number | null) => resolve(code ?? 1));
  });
}
