/** Pure decisions of the card pane: when it opens, and what a message from the page asks. */
import type { OpenOn } from "../config/settings";
import type { SpinOutcome } from "../protocol";

export type PaneAction = "ignore" | "update" | "open" | "reveal";

/**
 * What a finished spin does to the pane. `firstSpin` opens it once per window session
 * (a pane the user closed stays closed until Show Card Preview); `everySpin` brings it
 * forward each time; `never` only updates a pane opened by hand.
 */
export function paneAction(result: SpinOutcome, openOn: OpenOn, paneOpen: boolean, openedBefore: boolean): PaneAction {
  if (!result.step || !result.uri || result.error?.type === "devd.Cancelled" || result.error?.type === "devd.BadRequest") {
    return "ignore"; // superseded spins are followed by the newer one; bad requests have no step
  }
  if (openOn === "everySpin") {
    return paneOpen ? "reveal" : "open";
  }
  if (paneOpen) {
    return "update";
  }
  if (openOn === "firstSpin" && !openedBefore) {
    return "open";
  }
  return "ignore";
}

export type PageMessage =
  | { type: "openFile"; file: string; line: number }
  | { type: "ready" }
  | { type: "unknown" };

/** Messages the preview page posts (cards cannot: they sit in sandboxed frames). */
export function parsePageMessage(data: unknown): PageMessage {
  if (typeof data !== "object" || data === null) {
    return { type: "unknown" };
  }
  const msg = data as Record<string, unknown>;
  if (msg.type === "devd/openFile" && typeof msg.file === "string" && msg.file) {
    const line = Number(msg.line);
    return { type: "openFile", file: msg.file, line: Number.isInteger(line) && line > 0 ? line : 1 };
  }
  if (msg.type === "devd/ready") {
    return { type: "ready" };
  }
  return { type: "unknown" };
}

/** A nonce for the pane's Content-Security-Policy (one per pane; the page is never reloaded). */
export function makeNonce(random: (n: number) => Buffer): string {
  return random(18).toString("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, 24);
}
