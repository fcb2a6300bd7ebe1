/**
 * The card pane's messages, declared once for both sides: what the extension posts to the
 * preview page (previewPanel.ts) and what the page (cards/preview.js, type-checked against
 * this file by `tsc --checkJs` in `make lint`) posts back, and the page's talk with its card
 * frames (their bridge: devd/common/cards.py). The daemon has no model for these: it renders
 * the page, the pane and the page talk.
 */
/** The pane's buttons: Cancel, Re-spin, Debug, Show flow, the stale-parents box's three, Other split. */
export const PANE_ACTIONS = ["cancel", "respin", "debug", "runFlow", "resume", "spinFromLast", "pickSplit", "showFlow"] as const;
export type PaneButton = (typeof PANE_ACTIONS)[number];

/**
 * How a spin ended, as the user sees it. A superseded spin is followed by the newer one (no
 * status, no pane, no diagnostic); a cancelled one is its own outcome, never a failure.
 */
export type SpinEnd = "ok" | "failed" | "cancelled" | "superseded" | "refused";

/** A card's live update (`devd/cardUpdated`'s `card`, devd/common/cards.py update_payload). */
export interface LiveCard {
  uuid?: string | null;
  id?: string | null;
  type?: string | null;
  /** the whole card re-rendered (its layout changed): the frame loads it */
  html?: string | null;
  /** component id -> its new rendered form, applied in place by the card */
  components?: Record<string, unknown>;
}

/** Extension (or a browser host) -> page. */
export type ToPage =
  | { type: "devd/preview"; html: string }
  | { type: "devd/cardUpdated"; card?: LiveCard; params?: { card?: LiveCard } }
  | { type: "devd/spinStatus"; text: string; ok?: boolean }
  | { type: "devd/spinning"; step: string }
  | { type: "devd/spinEnded"; step: string; outcome: SpinEnd; message?: string };

/** Page -> extension (the pane parses them again: policy.ts parsePageMessage). */
export type FromPage =
  | { type: "devd/ready" }
  | { type: "devd/openFile"; file: string; line: number | null }
  | { type: "devd/action"; action: PaneButton; step?: string };

/** Page -> a card frame. */
export type ToFrame =
  | { type: "devd/cardUpdated"; components: Record<string, unknown> }
  | { type: "devd/cardData"; seq: number; id: string; data: string; title: string | null };

/** A card frame -> page. */
export type FromFrame =
  | { type: "devd/cardHeight"; height: number }
  | { type: "devd/cardReady" }
  | { type: "devd/cardSwapped"; seq: number; ok: boolean };

/** What the page keeps in the webview's state (survives a hidden pane's reload). */
export interface PageState {
  scrollX?: number;
  scrollY?: number;
}

/** The part of VS Code's webview API the page uses (acquireVsCodeApi()). */
export interface WebviewApi {
  postMessage(message: FromPage): void;
  getState(): PageState | undefined;
  setState(state: PageState): void;
}
