/**
 * The `devd` debug type: VS Code talks DAP straight to debugpy's adapter, which the step's
 * child started on a loopback port. No Python extension needed (code-server cannot install
 * Microsoft's offline); the daemon says where to connect in `devd/debugReady`.
 */
import * as vscode from "vscode";

import type { DebugReadyParams } from "../protocol";

export const DEBUG_TYPE = "devd";

/** The attach configuration for one debug spin. */
export function attachConfiguration(ready: DebugReadyParams): vscode.DebugConfiguration {
  return {
    type: DEBUG_TYPE,
    request: "attach",
    name: `devd: debug ${ready.step}`,
    connect: { host: ready.host, port: ready.port },
    // Breakpoints in the flow and in the user's own modules; stepping skips libraries, and
    // the call stack hides the frames of devd and Metaflow that run the step.
    justMyCode: true,
    rules: [
      { module: "devd", include: false },
      { module: "metaflow", include: false },
    ],
  };
}

/** Where a `devd` session's adapter listens; refuses anything but loopback. */
export function adapterEndpoint(configuration: vscode.DebugConfiguration): { host: string; port: number } {
  const connect = configuration.connect as { host?: unknown; port?: unknown } | undefined;
  const host = typeof connect?.host === "string" ? connect.host : "127.0.0.1";
  const port = connect?.port;
  if (typeof port !== "number" || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error("a devd debug session needs connect.port (the port `devd spin --debug` printed)");
  }
  if (!["127.0.0.1", "localhost", "::1"].includes(host)) {
    throw new Error(`devd debugs on loopback only, not ${host}`);
  }
  return { host, port };
}

export class DevdDebugAdapterFactory implements vscode.DebugAdapterDescriptorFactory {
  createDebugAdapterDescriptor(session: vscode.DebugSession): vscode.ProviderResult<vscode.DebugAdapterDescriptor> {
    const { host, port } = adapterEndpoint(session.configuration);
    return new vscode.DebugAdapterServer(port, host);
  }
}

/**
 * Debug spins waiting for their `devd/debugReady`, by flow URI (the newest one per flow).
 * One per extension, in the context (Devd.debugReady): the notification handler hands each
 * `devd/debugReady` to the Debug Step command waiting for it.
 */
export class DebugReadyWaiters {
  private readonly waiting = new Map<string, { resolve: (ready: DebugReadyParams) => void; done: Promise<DebugReadyParams> }>();

  expect(uri: string): Promise<DebugReadyParams> {
    let resolve!: (ready: DebugReadyParams) => void;
    const done = new Promise<DebugReadyParams>((r) => (resolve = r));
    this.waiting.set(uri, { resolve, done });
    return done;
  }

  /** A notification arrived: hand it to the command waiting for it; false if none. */
  ready(params: DebugReadyParams): boolean {
    const waiter = this.waiting.get(params.uri);
    if (!waiter) {
      return false;
    }
    this.waiting.delete(params.uri);
    waiter.resolve(params);
    return true;
  }

  /** Stop waiting (the spin answered first), unless a newer debug spin of the flow waits. */
  forget(uri: string, which: Promise<DebugReadyParams>): void {
    if (this.waiting.get(uri)?.done === which) {
      this.waiting.delete(uri);
    }
  }
}
