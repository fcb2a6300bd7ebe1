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
