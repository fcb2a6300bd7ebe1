"""Only the owner attaches to a debug spin: the check in front of debugpy's port.

debugpy's Debug Adapter Protocol has no authentication, and a loopback port is open to
every local user: whoever attaches runs code as the owner. So the listening socket debugpy
(pydevd) accepts on is replaced by one whose ``accept`` first asks the kernel who made the
connecting socket (the ``uid`` column of its row in ``/proc/net/tcp``, found by the two
ends' addresses) and closes it, before pydevd reads a byte, unless it is this process's own
uid. A connection whose owner cannot be told is refused too. A refusal is said on the
step's stderr (the owner's terminal or editor) and in the daemon's log.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from typing import Any

log = logging.getLogger("devd.debug")


def _hex_endpoint(host: str, port: int, v6: bool) -> str:
    """An IPv4 endpoint as ``/proc/net/tcp`` (or, IPv4-mapped, ``tcp6``) prints it."""
    raw = socket.inet_pton(socket.AF_INET6, "::ffff:" + host) if v6 else socket.inet_aton(host)
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def peer_uid(conn: socket.socket) -> int | None:
    """The uid that created the other end of the loopback TCP connection ``conn``, or None
    when the kernel's table has no row for it (it closed already: refused like a stranger).
    """
    local_host, local_port = conn.getsockname()[:2]
    peer_host, peer_port = conn.getpeername()[:2]
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        theirs = _hex_endpoint(peer_host, peer_port, v6)
        ours = _hex_endpoint(local_host, local_port, v6)
        try:
            with open(table) as fh:
                next(fh, None)  # the header
                for line in fh:
                    fields = line.split()
                    if len(fields) > 7 and fields[1] == theirs and fields[2] == ours:
                        return int(fields[7])
        except OSError:
            continue
    return None


def _user_name(uid: int | None) -> str:
    if uid is None:
        return "an unknown user"
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def refused(uid: int | None, peer: tuple[Any, ...]) -> str:
    """The line a refused attach is reported with."""
    return (f"devd: refused a debugger connection from {_user_name(uid)} at "
            f"{peer[0]}:{peer[1]}: only {_user_name(os.getuid())}, who started this debug "
            "spin, may attach")


def _report(line: str) -> None:
    """To the owner (the step's stderr, streamed to the terminal or editor) and to the
    daemon's log (the child inherited its handlers; a Session without logging set up
    gets the stderr line only)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    if logging.getLogger("devd").hasHandlers():
        log.warning("%s", line.removeprefix("devd: "))


class OwnerOnlySocket(socket.socket):
    """A listening socket whose ``accept`` hands out only the owner's connections."""

    def accept(self) -> tuple[socket.socket, Any]:
        me = os.getuid()
        while True:
            conn, address = super().accept()
            try:
                uid = peer_uid(conn)
            except OSError:  # it closed meanwhile
                uid = None
            if uid == me:
                # pydevd writes a message's header and body apart: without this, Nagle's
                # algorithm holds each body for the client's delayed ACK (~40 ms a message)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return conn, address
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            conn.close()  # unread: with SO_LINGER 0 the peer gets a reset
            _report(refused(uid, address))


def owner_only_server_socket(host: str, port: int) -> socket.socket:
    """What pydevd's ``create_server_socket`` makes, gated (see the module's doc)."""
    server = OwnerOnlySocket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))
        server.settimeout(None)
    except Exception:
        server.close()
        raise
    return server


def install() -> None:
    """Make pydevd listen through the gate; refuse to debug when this debugpy has no
    ``create_server_socket`` to replace (it would listen ungated)."""
    import debugpy.server  # noqa: F401 - puts debugpy's own pydevd on sys.path
    import pydevd

    if not hasattr(pydevd, "create_server_socket"):
        from .errors import DevdError

        raise DevdError("this debugpy version listens in a way devd cannot restrict to you: "
                        "install debugpy 1.8 (pip install 'debugpy>=1.8,<2')")
    pydevd.create_server_socket = owner_only_server_socket
