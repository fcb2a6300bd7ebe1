/** Pure decisions of the card pane: when it opens, and what a message from the page asks. */
import type { OpenOn } from "../config/settings";
import type { SpinOutcome } from "../protocol";
import { PANE_ACTIONS, type PaneButton, type SpinEnd } from "./pageMessages";

// The pane's buttons and a spin's ends are the page's words too: declared with its messages.
export { PANE_ACTIONS, type PaneButton, type SpinEnd };

export type PaneAction = "ignore" | "update" | "open" | "reveal";

/** How a spin ended, as the user sees it (SpinEnd says what each end means). */
export function spinEnd(result: SpinOutcome): SpinEnd {
  if (!result.step || result.error?.type === "devd.BadRequest") {
    return "refused";
  }
  if (result.cancelled === "superseded") {
    return "superseded";
  }
  if (result.cancelled === "user" || result.error?.type === "devd.Cancelled") {
    return "cancelled";
  }
  return result.ok ? "ok" : "failed";
}

/** Whether a spin that just started shows in the pane: it opens a closed pane unless the user said never. */
export function paneOnSpinStart(openOn: OpenOn, paneOpen: boolean): "open" | "update" | "ignore" {
  if (paneOpen) {
    return "update";
  }
  return openOn === "never" ? "ignore" : "open";
}

/**
 * What a finished spin does to the pane. `firstSpin` opens it once per window session
 * (a pane the user closed stays closed until Show Card Preview); `everySpin` brings it
 * forward each time; `never` only updates a pane opened by hand.
 */
export function paneAction(result: SpinOutcome, openOn: OpenOn, paneOpen: boolean, openedBefore: boolean): PaneAction {
  const end = spinEnd(result);
  if (!result.uri || end === "refused" || end === "superseded" || end === "cancelled") {
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
  | { type: "action"; action: PaneButton; step?: string }
  | { type: "unknown" };

/** The messages the preview page posts (FromPage in pageMessages.ts; cards cannot: they sit in sandboxed frames), checked again here. */
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
  if (msg.type === "devd/action" && PANE_ACTIONS.includes(msg.action as PaneButton)) {
    const step = typeof msg.step === "string" && /^[A-Za-z_][A-Za-z0-9_]*$/.test(msg.step) ? msg.step : undefined;
    return { type: "action", action: msg.action as PaneButton, step };
  }
  return { type: "unknown" };
}

/** A nonce for the pane's Content-Security-Policy (one per pane; the page is never reloaded). */
export function makeNonce(random: (n: number) => Buffer): string {
  return random(18).toString("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, 24);
}

/** Where the pane goes (a column number, or "beside" the active editor). */
export type PaneColumn = number | "beside";

/**
 * The pane's column, so that it and the flow view show side by side: with the flow view
 * open (in column `flow`), the pane stays where it is unless that hides the flow view or the
 * editor (column `editor`), else it goes to the column right of the flow view (right of the
 * editor when the editor is there); without the flow view, beside the active editor.
 */
export function paneColumn(flow: number | undefined, pane: number | undefined, editor: number | undefined): PaneColumn {
  if (flow === undefined) {
    return "beside";
  }
  if (pane !== undefined && pane !== flow && pane !== editor) {
    return pane;
  }
  const next = Math.min(flow + 1, 9);
  return next === editor ? "beside" : next; // the editor right of the flow view: beside it
}
