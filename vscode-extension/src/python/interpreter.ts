/**
 * Which Python runs devd: the `devd.pythonPath` setting, else the Python extension's
 * active environment (when that extension is installed; never required), else python3.
 */

export type InterpreterSource = "setting" | "python extension" | "default";

export interface Interpreter {
  path: string;
  source: InterpreterSource;
}

export interface InterpreterInputs {
  setting: string;
  /** Asks the Python extension; undefined when it is absent or has no environment. */
  pythonExtension: () => Promise<string | undefined>;
}

export async function resolveInterpreter(inputs: InterpreterInputs): Promise<Interpreter> {
  if (inputs.setting) {
    return { path: expandHome(inputs.setting), source: "setting" };
  }
  let fromExtension: string | undefined;
  try {
    fromExtension = await inputs.pythonExtension();
  } catch {
    fromExtension = undefined; // a broken or still-activating Python extension: fall through
  }
  if (fromExtension) {
    return { path: fromExtension, source: "python extension" };
  }
  return { path: "python3", source: "default" };
}

function expandHome(path: string): string {
  const home = process.env.HOME;
  return home && (path === "~" || path.startsWith("~/")) ? home + path.slice(1) : path;
}
