"""The protocol layer: one pygls language server per client connection, one shared Engine.

DevdServer holds one client's state (its card pane, settings, last spins) and forwards the
engine's events to it; the requests it answers are registered by devd/lsp/features.py
(the language features) and devd/lsp/handlers.py (devd's own methods). Work that may take
time (spins, runs, loading a flow) goes to a thread pool so hovers and lenses stay instant.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Executor
from typing import Any, TypeVar

import cattrs
from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.uris import from_fs_path
from pygls.workspace import Workspace

from .. import __version__
from ..core.engine import Engine
from ..core.events import (
    CardUpdated,
    EngineEvent,
    FileChanged,
    FileDeleted,
    RunProgressed,
    SpinFinished,
)
from . import features, handlers
from .models import ENVELOPES, shared_converter
from .onespin import Spins
from .panes import pane_preview
from .translate import card_updated_json, run_progress_json, spin_outcome, state_changed_json

T = TypeVar("T")


class DevdProtocol(LanguageServerProtocol):
    """LSP protocol whose ``exit`` ends this connection only, never the shared daemon.

    Every method works for a bare JSON-RPC client that never sends ``initialize`` (the
    CLI): until one arrives, the client has no capabilities and an empty workspace
    (documents are read from disk).
    """

    def __init__(self, server: DevdServer, converter: cattrs.Converter) -> None:
        super().__init__(server, converter)
        self.devd_server = server
        self.client_capabilities = types.ClientCapabilities()
        self.bare_workspace = Workspace(None, types.TextDocumentSyncKind.Full)

    @property
    def workspace(self) -> Workspace:
        """The workspace ``initialize`` made; before that (or without it), an empty one."""
        try:
            return super().workspace
        except RuntimeError:  # pygls: "has the server been initialized?"
            return self.bare_workspace

    def get_message_type(self, method: str) -> type | None:  # type: ignore[override]
        """devd's own requests read into their models (devd/lsp/models.py), LSP's into
        lsprotocol's (pygls caches its lookup; this one is a dict's)."""
        return ENVELOPES.get(method) or super().get_message_type(method)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        """End this connection; pygls's own exit would end the daemon's process."""
        closer = self.devd_server.close_connection
        if closer is not None:
            closer()
        yield from ()


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
        self.one_spin = Spins()  # a save and a Spin of one action make one spin (onespin.py)
        self.close_connection: Callable[[], None] | None = None
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

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, fn, *args)

    def on_engine_event(self, event: EngineEvent) -> None:
        """Forward an engine event to this client in its wire form; refresh what it affects."""
        if not self.lsp_client:
            return
        if isinstance(event, SpinFinished):
            payload = spin_outcome(event.result, from_fs_path(event.flow) or event.flow,
                                   self.card_html)
            pane = self.pane
            if pane is not None:
                payload.preview = pane_preview(event.result, pane)
            self.notify_threadsafe("devd/spinFinished", payload)
            features.publish_diagnostics(self, event.flow)
        elif isinstance(event, CardUpdated):
            self.notify_threadsafe("devd/cardUpdated", card_updated_json(event))
        elif isinstance(event, RunProgressed):
            self.notify_threadsafe("devd/runProgress", run_progress_json(event))
        else:
            self.notify_threadsafe("devd/stateChanged", state_changed_json(event))
            if isinstance(event, FileChanged | FileDeleted) and event.flow:
                features.publish_diagnostics(self, event.flow)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
