"""Card pane previews: the page a client's VS Code webview shows for a spin, rendered in the
daemon so a spinFinished can carry it (one round trip less than asking devd/card)."""

from __future__ import annotations

import logging
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from ..core.result import SpinResult
from .spinmodels import PanePreview, WebviewOptions

log = logging.getLogger("devd.lsp")


def pane_options(webview: WebviewOptions, method: str) -> dict[str, Any]:
    """The card pane a preview is rendered for (``pane_page``; the client's pane is
    ``DevdServer.pane``), its nonce, CSP source and card script hashes checked (their
    types were, from the model, before the handler ran)."""
    from ..core.preview import CardAssets, WebviewOptionsError, check_webview

    try:
        check_webview(webview.nonce, webview.csp_source)
        known = list(CardAssets(webview.assets or []).known)
    except WebviewOptionsError as exc:
        raise JsonRpcInvalidParams(f"{method}: {exc}") from None
    return {"nonce": webview.nonce, "csp_source": webview.csp_source, "known": known,
            "version": webview.version}


def pane_page(result: SpinResult, pane: dict[str, Any]) -> tuple[str, list[str]]:
    """The preview page of ``result`` for a card pane, and the card scripts it carries in
    full (those the pane does not hold yet)."""
    from ..core.preview import CardAssets, recorded_hashes, render_preview

    assets = CardAssets(pane["known"])
    html = render_preview(result, recorded=recorded_hashes(result), nonce=pane["nonce"],
                          csp_source=pane["csp_source"], assets=assets)
    return html, sorted(assets.sent)


def pane_preview(result: SpinResult, pane: dict[str, Any]) -> PanePreview | None:
    """The ``preview`` of a spinFinished to the client with that pane, as devd/card answers
    it, with the pane's ``version`` (the extension drops it if its page changed meanwhile)."""
    try:
        html, assets = pane_page(result, pane)
    except Exception:  # the pane asks with devd/card then, and gets the error there
        log.exception("rendering the pane's preview of %s", result.step)
        return None
    return PanePreview(html=html, assets=assets, version=pane["version"])
