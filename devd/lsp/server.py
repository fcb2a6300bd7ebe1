"""The protocol layer: one pygls language server per client connection, one shared Engine.

DevdServer holds one client's state (its card pane, settings, last spins) and forwards the
engine's events to it; the requests it answers are registered by devd/lsp/features.py
(the language features) and devd/lsp/handlers.py (devd's own methods). Work that may take
time (spins, runs, loading a flow) goes to a thread pool so hovers and lenses stay instant.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import Executor
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.uris import from_fs_path

from .. import __version__
from ..engine import Engine
from ..result import SpinResult
from . import features, handlers
from .panes import pane_preview
from .translate import spin_json


class DevdProtocol(LanguageServerProtocol):
    """LSP protocol whose ``exit`` ends this connection only, never the shared daemon.

    Every method works for a bare JSON-RPC client that never sends ``initialize`` (the
    CLI): until one arrives, the client has no capabilities and an empty workspace
    (documents are read from disk).
    """

    def __init__(self, server: Any, converter: Any) -> None:
        super().__init__(server, converter)
        from pygls.workspace import Workspace

        self.client_capabilities = types.ClientCapabilities()
        self._workspace = Workspace(None, types.TextDocumentSyncKind.Full)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> None:
        closer = getattr(self._server, "close_connection", None)
        if closer is not None:
            closer()


@functools.cache
def shared_converter() -> Any:
    """pygls's converter, built once: building one registers every LSP type with cattrs
    (~8 ms), and the daemon makes a server per connection."""
    from pygls.protocol import default_converter

    return default_converter()


class DevdServer(LanguageServer):
    """One client's view of the shared engine."""

    def __init__(self, engine: Engine, pool: Executor) -> None:
        super().__init__("devd", __version__, protocol_cls=DevdProtocol,
                         converter_factory=shared_converter,
                         text_document_sync_kind=types.TextDocumentSyncKind.Full)
        self.engine = engine
        self.pool = pool
        self.loop: asyncio.AbstractEventLoop | None = None
        self.spin_on_save = False
        self.card_html = True  # initializationOptions.cardHtml: false leaves card HTML out
        # The card pane this client showed last (`webview` of its devd/spin or devd/card):
        # every spinFinished to it carries that pane's preview, one round trip less.
        self.pane: dict[str, Any] | None = None
        self.last_spun: dict[str, str] = {}  # path -> step last spun from this client
        self.close_connection: Any = None
        # Only an LSP client (one that sent `initialize`) gets broadcast notifications; a
        # bare JSON-RPC client such as the CLI gets just the logs of its own requests.
        self.lsp_client = False
        features.register(self)
        handlers.register(self)

    def notify_threadsafe(self, method: str, params: Any) -> None:
        """Send a notification from any thread (the pool's included)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if threading.current_thread() is threading.main_thread() and _running_loop() is loop:
            self.protocol.notify(method, params)
        else:
            loop.call_soon_threadsafe(self.protocol.notify, method, params)

    async def in_pool(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, fn, *args)

    def on_engine_event(self, method: str, params: dict[str, Any]) -> None:
        """Forward engine events to this client; refresh what they affect."""
        if not self.lsp_client:
            return
        if method == "devd/spinFinished":
            result: SpinResult = params["result"]
            path = params["flow"]
            payload = spin_json(result, from_fs_path(path) or path, self.card_html)
            pane = self.pane
            if pane is not None:
                payload["preview"] = pane_preview(result, pane)
            self.notify_threadsafe(method, payload)
            features.publish_diagnostics(self, path)
        elif method == "devd/cardUpdated":
            payload = dict(params)
            payload["uri"] = from_fs_path(params["flow"])
            self.notify_threadsafe(method, payload)
        else:
            payload = dict(params)
            if "flow" in payload:
                payload["uri"] = from_fs_path(payload["flow"])
            self.notify_threadsafe(method, payload)
            if payload.get("flow") and payload.get("reason") in ("fileChanged", "fileDeleted"):
                features.publish_diagnostics(self, payload["flow"])


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
