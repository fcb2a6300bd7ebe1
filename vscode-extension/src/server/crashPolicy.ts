/**
 * What to do when a project's server connection closes on its own: restart once, then give
 * up and say so (a daemon that keeps dying needs a look at its log, not a restart loop).
 */
export class CrashPolicy {
  private crashes = 0;

  constructor(private readonly maxRestarts = 1) {}

  /** Called on each unexpected close; true: restart. */
  shouldRestart(): boolean {
    this.crashes += 1;
    return this.crashes <= this.maxRestarts;
  }

  /** A deliberate restart (settings, interpreter, command) starts the count again. */
  reset(): void {
    this.crashes = 0;
  }
}

export type CloseDecision = "restart" | "giveUp" | "ignore";

/**
 * A client's connection closed. Only the project's current client, closing on its own, is
 * restarted (once): a client being stopped on purpose (Restart Daemon, a new interpreter)
 * or one already replaced is left closed, or it would come back untracked beside its
 * successor (two `devd serve`, every lens twice).
 */
export function onClientClosed(facts: { current: boolean; stopping: boolean }, policy: CrashPolicy): CloseDecision {
  if (!facts.current || facts.stopping) {
    return "ignore";
  }
  return policy.shouldRestart() ? "restart" : "giveUp";
}
