"""The child's side of a fork (or spawn): its main (output to the pipes, the result or the
traceback back), and what code running in it uses to talk to the warm process: ``receive``
an armed child's request, ``accept`` it, ``emit`` a typed event (devd/child/request.py's
``ChildEvent``)."""

from __future__ import annotations

import io
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from .channel import Channel, iter_messages

_CHANNEL: Channel | None = None
_REQUESTS = -1


class NoRequest(Exception):
    """The parent dropped an armed child without sending it a request."""


def receive() -> Any:
    """In an armed child: wait for the parent's request and return it."""
    global _REQUESTS
    try:
        message = next(iter_messages(_REQUESTS), None)
    finally:
        os.close(_REQUESTS)
        _REQUESTS = -1
    if message is None or message[0] != "request":
        raise NoRequest()
    return message[1]


def accept() -> None:
    """Tell the parent an armed child took its request (its sources were unchanged)."""
    if _CHANNEL is not None:
        _CHANNEL.send("accepted", None)


def answer_and_exit(value: Any) -> None:  # pragma: no cover - runs in the child
    """End an armed child now with ``value`` as its result (its output flushed first)."""
    _close_output()
    if _CHANNEL is not None:
        _CHANNEL.send("result", value)
    os._exit(0)


def emit(event: Any) -> None:
    """Send a typed event (a ``ChildEvent``) from inside a child to the parent, which
    hands it to its ``on_event`` (no-op outside a child)."""
    if _CHANNEL is not None:
        _CHANNEL.send("event", event)


def child_main(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    out_w: int | None,
    err_w: int | None,
    channel: Channel,
    requests: int = -1,
) -> None:  # pragma: no cover - runs in the child
    global _CHANNEL, _REQUESTS
    _REQUESTS = requests
    code = 0
    try:
        _close_inherited({fd for fd in (out_w, err_w, channel.fd, requests) if fd is not None})
        import faulthandler

        faulthandler.disable()  # a crash is reported by its signal, not by a dump elsewhere
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if out_w is not None and err_w is not None:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.close(out_w)
            os.close(err_w)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        _CHANNEL = channel
        try:
            value = func(*args)
            _close_output()  # all output is in the pipes before the result is
            _yield_to_parent()
            _CHANNEL.send("result", value)
        except NoRequest:
            pass
        except BaseException:  # noqa: BLE001 - whatever the step raised (SystemExit too) goes to the parent
            message = traceback.format_exc()
            _close_output()
            _CHANNEL.send("error", message)
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - the step may have replaced or closed them; the
            pass  # child exits either way
        os._exit(code)


def _yield_to_parent() -> None:  # pragma: no cover - runs in the child
    """Run at idle priority from now on: all that is left is to send the result and exit.

    The parent, woken by the result, is often queued on this child's CPU, and the exit
    (unmapping an address space the size of the warm process) takes milliseconds; at idle
    priority the parent runs as soon as it is woken, and the exit uses what CPU is left.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        pass


def _close_inherited(keep: set[int]) -> None:  # pragma: no cover - runs in the child
    """Close the pipes and sockets this child inherited from other threads' work.

    A fork copies every descriptor: a pipe another thread's subprocess writes to, or a
    client's socket, would stay open here and its reader would never see the end.
    Regular files stay open (a logging handler may still write to one).
    """
    import stat

    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd <= 2 or fd in keep:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            try:
                os.close(fd)
            except OSError:
                pass


def _close_output() -> None:  # pragma: no cover - runs in the child
    """Flush stdout/stderr and let go of the parent's pipes (later writes go nowhere)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001 - a stream the step replaced or closed: nothing to
            pass  # flush, and the result still has to go
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def spawned_main(res_path: str) -> None:  # pragma: no cover - runs in the spawned child
    """Entry point of a spawned child: read the function from stdin, run it, exit."""
    func, args = pickle.loads(sys.stdin.buffer.read())
    fd = os.open(res_path, os.O_WRONLY | os.O_TRUNC)
    child_main(func, args, None, None, Channel(fd))
