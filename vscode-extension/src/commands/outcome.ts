/** How a run ended, as the user sees it (pure: unit-tested). */
import type { RunResult } from "../protocol";

/** A run stopped by the user's Cancel is cancelled, not a failure with its exit code. */
export function runEnd(result: RunResult): "ok" | "failed" | "cancelled" {
  if (result.cancelled) {
    return "cancelled";
  }
  return result.ok ? "ok" : "failed";
}
