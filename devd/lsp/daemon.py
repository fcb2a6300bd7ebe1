"""The project daemon: a Unix-socket JSON-RPC server holding one warm Engine.

``python -m devd.lsp.daemon --root ROOT`` serves; clients start, stop and join it through
devd/cli/daemons.py (``devd daemon start``, ``devd serve --stdio`` that an editor starts, the
CLI's commands, ``devd mcp``), so the editor and terminal commands share one warm state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from ..common.project import (
    daemon_paths,
    peer_uid,
    this_interpreter,
)
from ..core import daemonlog, memory
from ..core.daemonlog import Throttle
from ..core.threads import ThreadPerTask

if TYPE_CHECKING:
    from .server import DevdServer

log = logging.getLogger("devd.daemon")


class _LoopWriter:
    """pygls writer for a socket: thread-safe (results and notifications come from threads)."""

    def __init__(self, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> None:
        self._writer = writer
        self._loop = loop

    def write(self, data: bytes) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._writer.write(data)
        else:
            self._loop.call_soon_threadsafe(self._writer.write, data)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._writer.close)


# TCP clients: the token line must arrive within this many seconds; at most this many
# connections may be waiting to send it (others are closed at once).
TOKEN_SECONDS = 2.0
MAX_PREAUTH = 16


async def _discard(reader: asyncio.StreamReader, limit: int, seconds: float) -> None:
    """Read and drop what the client still sends (up to ``limit`` bytes, ``seconds``)."""
    deadline = time.monotonic() + seconds
    while limit > 0:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            chunk = await asyncio.wait_for(reader.read(1 << 16), left)
        except (asyncio.TimeoutError, ConnectionError):
            return
        if not chunk:
            return
        limit -= len(chunk)


class Daemon:
    """Serves any number of clients over the project's Unix socket (and TCP if asked)."""

    def __init__(self, root: str, idle_seconds: float, budget_bytes: int | None,
                 tcp_port: int | None = None) -> None:
        from ..core.engine import Engine
        from ..core.watch import FileWatcher

        self.paths = daemon_paths(root)
        self.uid = os.geteuid() if hasattr(os, "geteuid") else None
        self.idle_seconds = idle_seconds
        self.tcp_port = tcp_port
        self.token = secrets.token_hex(16) if tcp_port is not None else None
        self.engine = Engine(root, budget_bytes)
        # A thread per request: user code (a step that never returns) must not be able to
        # use up a fixed pool and hang every later request. When the last one ends, the
        # free pages of the heap go back to the system (devd/core/memory.py).
        self.pool = ThreadPerTask(thread_name_prefix="devd", on_idle=memory.release)
        self.connections = 0
        self.stop_event = threading.Event()
        self.watcher = FileWatcher(self._file_changed)
        self.engine.watch_hook = self.watcher.watch  # every flow a session opens is watched
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spare: DevdServer | None = None
        self._preauth = 0  # TCP connections that have not sent the token yet
        self._throttle = Throttle(burst=1, window=60.0)

    def note(self, key: str, message: str, level: int = logging.WARNING) -> None:
        """Log ``message`` once a minute at most per ``key`` (with how often it recurred)."""
        ok, suppressed = self._throttle.allow(key)
        if ok:
            more = f" [{suppressed} more like this in the last minute]" if suppressed else ""
            log.log(level, "%s%s", message, more)

    def _make_spare(self) -> None:
        """A language server ready for the next client (building one takes ~5 ms)."""
        from .server import DevdServer

        if self._spare is None and not self.stop_event.is_set():
            self._spare = DevdServer(self.engine, self.pool)

    # -- files --------------------------------------------------------------------
    def _file_changed(self, path: str) -> None:
        self.engine.file_changed(path)

    # -- connections ---------------------------------------------------------------
    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        try:
            if not await self._admit(reader, writer):
                writer.transport.abort()
                return
            await self._serve_admitted(reader, writer)
        except Exception as exc:  # noqa: BLE001 - one connection's failure is logged, never raised
            self.note(f"connection {type(exc).__name__}",
                      f"a connection ended with {type(exc).__name__}: {exc}", logging.ERROR)
            writer.transport.abort()

    async def _admit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Only the owner gets in: a Unix peer must run as the daemon's own user
        (SO_PEERCRED); a TCP peer must send the token, in time, before anything else."""
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            uid = peer_uid(sock)
            if uid is not None and self.uid is not None and uid != self.uid:
                self.note("peer uid", f"refused a connection from uid {uid} (the daemon "
                          f"serves uid {self.uid} only)")
                return False
            return True
        if self.token is None:
            return False
        if self._preauth >= MAX_PREAUTH:
            self.note("preauth cap", f"more than {MAX_PREAUTH} TCP connections without a "
                      "token yet: closing new ones")
            return False
        self._preauth += 1
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), TOKEN_SECONDS)
        except asyncio.TimeoutError:
            self.note("token timeout", f"a TCP connection did not send its token within "
                      f"{TOKEN_SECONDS:g} s: closed")
            return False
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            self.note("no token", "a TCP connection closed, or sent a line too long, before "
                      "its token: closed")
            return False
        finally:
            self._preauth -= 1
        if not secrets.compare_digest(line.strip(), f"TOKEN {self.token}".encode()):
            self.note("bad token", "a TCP connection sent a wrong token: closed")
            return False
        return True

    async def _serve_admitted(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        from .models import shared_converter
        from .rpcio import Connection
        from .server import DevdServer

        loop = asyncio.get_running_loop()
        self.connections += 1
        self.engine.touch()
        server, self._spare = self._spare or DevdServer(self.engine, self.pool), None
        # Build the next connection's server once this one's first request is answered.
        loop.call_later(0.2, self._make_spare)
        server.loop = loop
        loop_writer = _LoopWriter(writer, loop)
        server.protocol.set_writer(loop_writer)
        connection_done = threading.Event()

        def close_connection() -> None:
            connection_done.set()
            loop.call_soon_threadsafe(writer.close)

        server.close_connection = close_connection
        self.engine.add_listener(server.on_engine_event)
        try:
            unframed = await Connection(server.protocol, shared_converter(), loop_writer,
                                        self.note).serve(reader, connection_done)
            if unframed:  # let the client read the error: no reset for its unread bytes
                writer.write_eof()
                await _discard(reader, limit=4 << 20, seconds=2.0)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.engine.remove_listener(server.on_engine_event)
            # Nobody waits for this connection's spins and runs any more (its client
            # exited, or was interrupted with Ctrl-C): stop them.
            stopped = self.engine.cancel_owner(server)
            if stopped:
                log.info("connection closed: cancelled its work %s", stopped)
            self.connections -= 1
            self.engine.touch()
            try:
                await writer.drain()
            except (OSError, RuntimeError):  # the client left first: nothing more to send
                pass
            try:
                writer.close()
            except RuntimeError:  # the loop is closing with the daemon
                pass

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's errors, once a minute each: out of file descriptors, every accept()
        fails and asyncio retries every second."""
        message = str(context.get("message") or "asyncio error")
        exc = context.get("exception")
        ok, suppressed = self._throttle.allow(("asyncio", message))
        if not ok:
            return
        more = f" [{suppressed} more like this in the last minute]" if suppressed else ""
        if isinstance(exc, OSError):
            log.error("%s: %s%s", message, exc, more)
        else:
            loop.default_exception_handler(context)

    async def _idle_watch(self) -> None:
        while not self.stop_event.is_set():
            await asyncio.sleep(min(5.0, max(self.idle_seconds / 4, 0.2)))
            idle = time.monotonic() - self.engine.last_activity
            if self.connections == 0 and not self.engine.running() and \
                    idle > self.idle_seconds:
                log.info("idle for %.0f s: exiting", idle)
                self.stop_event.set()

    async def serve(self) -> None:
        from .rpcio import MAX_LINE

        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(self._loop_exception)
        self.paths.ensure()
        old_umask = os.umask(0o077)  # the socket is 0600 from the start, not after a chmod
        try:
            server = await asyncio.start_unix_server(self._serve_connection,
                                                     path=self.paths.socket, limit=MAX_LINE)
        finally:
            os.umask(old_umask)
        os.chmod(self.paths.socket, 0o600)
        servers = [server]
        if self.tcp_port is not None:
            servers.append(await asyncio.start_server(self._serve_connection, "127.0.0.1",
                                                      self.tcp_port, limit=MAX_LINE))
        self._write_files()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self.stop_event.set)
        idle = asyncio.ensure_future(self._idle_watch())
        try:
            # A threading.Event (set from other threads too): polled, as asyncio cannot wait on it.
            while not self.stop_event.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        finally:
            idle.cancel()
            for s in servers:
                s.close()
            self.engine.close()
            self.watcher.stop()
            self._remove_files()

    def _write_files(self) -> None:
        with open(self.paths.pidfile, "w") as fh:
            fh.write(str(os.getpid()))
        # python and prefix: the interpreter this daemon serves (one daemon, one interpreter)
        info: dict[str, Any] = {"pid": os.getpid(), "root": self.paths.root,
                                **this_interpreter(),
                                "socket": self.paths.socket, "started": time.time(),
                                "idleSeconds": self.idle_seconds,
                                "budgetBytes": self.engine.budget_bytes}
        if self.tcp_port is not None:
            info["tcp"] = {"host": "127.0.0.1", "port": self.tcp_port, "token": self.token}
        # the interpreter first: a client that finds info.json finds it too
        fd = os.open(self.paths.interpreter, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{info['prefix']}\n{info['python']}\n")
        fd = os.open(self.paths.info, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)

    def _remove_files(self) -> None:
        for name in (self.paths.socket, self.paths.pidfile, self.paths.info,
                     self.paths.interpreter):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass


def idle_seconds_default() -> float:
    try:
        return float(os.environ.get("DEVD_IDLE_TIMEOUT", "1800"))
    except ValueError:
        return 30 * 60.0


def budget_default() -> int | None:
    mb = os.environ.get("DEVD_BUDGET_MB")
    return int(float(mb) * (1 << 20)) if mb else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devd.lsp.daemon")
    parser.add_argument("--root", required=True)
    parser.add_argument("--idle-timeout", type=float, default=None)
    parser.add_argument("--budget-mb", type=float, default=None)
    parser.add_argument("--tcp", type=int, default=None)
    args = parser.parse_args(argv)
    memory.tune()  # before any thread starts: they would get arenas of their own
    paths = daemon_paths(args.root)
    paths.ensure()
    daemonlog.setup(paths.log)
    os.chdir(args.root)
    budget = int(args.budget_mb * (1 << 20)) if args.budget_mb is not None else budget_default()
    idle = args.idle_timeout if args.idle_timeout is not None else idle_seconds_default()
    daemon = Daemon(args.root, idle, budget, args.tcp)
    asyncio.run(daemon.serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
