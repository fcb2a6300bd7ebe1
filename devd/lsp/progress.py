"""``$/progress`` for long work: parents downloading during a spin, and the steps of a run.

Each reports on the client's ``workDoneToken`` when it sent one (the CLI does), else on a
token the server creates with window/workDoneProgress/create when the client supports
that (an editor), else not at all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

if TYPE_CHECKING:
    from .server import DevdServer

log = logging.getLogger("devd.lsp")


def _valid_token(token: Any) -> bool:
    return isinstance(token, str | int) and not isinstance(token, bool)


def _can_create_tokens(server: DevdServer) -> bool:
    caps = server.client_capabilities
    return bool(caps and caps.window and caps.window.work_done_progress)


class TransferProgress:
    """Parents downloading during a spin, begun at the first byte. Called from a pool
    thread; everything it sends goes through the server's event loop."""

    def __init__(self, server: DevdServer, client_token: Any, title: str) -> None:
        self.server = server
        self.title = title
        self.client_token = client_token if _valid_token(client_token) else None
        self.token: Any = None
        self.begun = False  # set on the event loop
        self.ended = False

    def _loop(self) -> asyncio.AbstractEventLoop | None:
        loop = self.server.loop
        return loop if loop is not None and loop.is_running() else None

    def report(self, done: int, total: int, message: str) -> None:
        loop = self._loop()
        if loop is None:
            return
        percentage = int(100 * done / total) if total else 0
        if self.token is None:
            if self.client_token is not None:
                self.token = self.client_token
            elif _can_create_tokens(self.server):
                self.token = f"devd-download-{id(self)}"
            else:
                self.token = False  # nobody to tell
                return
            asyncio.run_coroutine_threadsafe(self._begin(message, percentage), loop)
            return
        if self.token is False:
            return
        report = types.WorkDoneProgressReport(message=message, percentage=percentage)
        loop.call_soon_threadsafe(self._send, report)

    async def _begin(self, message: str, percentage: int) -> None:
        progress = self.server.work_done_progress
        try:
            if self.token != self.client_token:
                await progress.create_async(self.token)
            progress.begin(self.token, types.WorkDoneProgressBegin(
                title=self.title, message=message, percentage=percentage, cancellable=False))
            self.begun = True
        except JsonRpcException as exc:  # the client refused the token: the spin goes on
            log.info("no download progress: the client refused token %s: %s", self.token, exc)
            self.token = False
            return
        if self.ended:  # the spin ended while the client answered
            self._finish()

    def _send(self, value: types.WorkDoneProgressReport) -> None:
        if self.begun:
            self.server.work_done_progress.report(self.token, value)

    def end(self) -> None:
        loop = self._loop()
        if loop is None or not self.token:
            return
        loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        self.ended = True
        if self.begun:
            self.begun = False
            self.server.work_done_progress.end(self.token,
                                               types.WorkDoneProgressEnd(message="done"))
            self.server.work_done_progress.tokens.pop(self.token, None)


class RunProgress:
    """The steps of a run or resume done so far; cancellable in the editor (its own token),
    not on the CLI's token (the CLI cancels with Ctrl-C)."""

    def __init__(self, server: DevdServer, subcommand: str, client_token: Any) -> None:
        if client_token is not None and not _valid_token(client_token):
            raise JsonRpcInvalidParams("workDoneToken must be a string or an integer")
        self.server = server
        self.title = f"devd {subcommand}"
        self.client_token = client_token
        self.token: Any = client_token if client_token is not None else \
            f"devd-{subcommand}-{id(self)}"
        self.active = False

    async def begin(self) -> None:
        """Begin on the event loop, before the run starts."""
        progress = self.server.work_done_progress
        if self.client_token is not None:
            progress.begin(self.token, types.WorkDoneProgressBegin(
                title=self.title, percentage=0, cancellable=False))
            self.active = True
        elif _can_create_tokens(self.server):
            try:
                await progress.create_async(self.token)
            except JsonRpcException as exc:  # the client refused: the run goes on, unshown
                log.info("no run progress: the client refused token %s: %s", self.token, exc)
                return
            progress.begin(self.token, types.WorkDoneProgressBegin(
                title=self.title, percentage=0, cancellable=True))
            self.active = True

    def step_done(self, done: int, total: int, step: str) -> None:
        """One more step finished (from the run's pool thread)."""
        loop = self.server.loop
        if self.active and loop is not None:
            report = types.WorkDoneProgressReport(message=f"{done}/{total} steps ({step})",
                                                  percentage=int(100 * done / max(total, 1)))
            loop.call_soon_threadsafe(self.server.work_done_progress.report, self.token,
                                      report)

    def end(self) -> None:
        """End on the event loop, once the run is over."""
        if self.active:
            self.active = False
            self.server.work_done_progress.end(self.token,
                                               types.WorkDoneProgressEnd(message="done"))
            self.server.work_done_progress.tokens.pop(self.token, None)
