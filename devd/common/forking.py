"""Run a function in a forked child of this (warm) process and bring its result back.

The child inherits the warm state through copy-on-write, so nothing it does can
change or crash the parent. Its stdout/stderr (file descriptors 1 and 2, so C
extensions and subprocesses are captured too) stream back through pipes, and its
return value comes back pickled through a third pipe. Where ``fork`` does not
exist (Windows), a spawned interpreter runs the same function: slower, but the
same contract. This is the parent's side; forker.py forks, channel.py carries the
messages, childside.py is the child's main and its ``receive``/``emit``.
"""

from __future__ import annotations

import atexit
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cloudpickle

from . import scratch
from .channel import Channel, iter_messages
from .childside import child_main
from .forker import fork

if TYPE_CHECKING:
    import codecs
    import subprocess

OutputCallback = Callable[[str, str], None]


def fork_available() -> bool:
    """Fork unless the platform lacks it or DEVD_NO_FORK=1 asks for the spawn path."""
    return hasattr(os, "fork") and os.environ.get("DEVD_NO_FORK", "") not in ("1", "true")


@dataclass
class ChildOutcome:
    """What a child left behind: its value (or a crash description) and its output."""

    value: Any = None
    crashed: str | None = None
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


def max_output_bytes() -> int:
    """How much of a step's stdout (and of its stderr) is kept, streamed and returned: as
    Metaflow's ``run --max-log-size`` (10 MB) does, the rest is summarised, kept in a file."""
    try:
        return max(int(float(os.environ.get("DEVD_MAX_LOG_MB", "10")) * 1_000_000), 1)
    except ValueError:
        return 10_000_000


def _spill_file(stream: str) -> Any:
    """A private file (0600, in the temp dir) for the full text of a step's ``stream``."""
    from .bounds import private_file

    return private_file(stream)


def _drop_spill(spill: Any) -> None:
    """Close and remove a spill file that could not be written (a full disk): the output
    stays capped and the half-written file frees its space."""
    if spill is None:
        return
    try:
        spill.close()
    except OSError:
        pass
    try:
        os.unlink(spill.path)
    except OSError:
        pass


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


class ChildProcess:
    """A running child: kill it, or wait for its outcome.

    An *armed* child (fork only) gets a request pipe too: it runs ahead of time and
    blocks in ``receive()`` until the parent ``send``s it what to do. Its output
    before ``attach`` is kept and handed to the callbacks given there.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        on_output: OutputCallback | None = None,
        on_event: Callable[[Any], None] | None = None,
        armed: bool = False,
    ) -> None:
        self._on_output = on_output
        self._on_event = on_event
        self._out: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._out_lock = threading.Lock()
        self._req_w: int | None = None
        self.killed = False
        self.pid = 0
        self._start(func, args, armed)

    # -- parent side -------------------------------------------------------
    def _start(self, func: Callable[..., Any], args: tuple[Any, ...], armed: bool) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        self.forked = fork_available()
        self._proc: subprocess.Popen[bytes] | None = None
        self._res_path: str | None = None
        if armed and not self.forked:
            raise RuntimeError("an armed child needs fork")
        if self.forked:
            res_r, res_w = os.pipe()
            req_r, req_w = os.pipe() if armed else (-1, -1)

            def in_child() -> None:  # pragma: no cover - runs in the child
                os.close(out_r)
                os.close(err_r)
                os.close(res_r)
                if armed:
                    os.close(req_w)
                child_main(func, args, out_w, err_w, Channel(res_w), req_r)

            try:
                pid = fork(in_child)
            except BaseException:
                for fd in (out_r, out_w, err_r, err_w, res_r, res_w, req_r, req_w):
                    if fd >= 0:
                        os.close(fd)
                raise
            os.close(res_w)
            if armed:
                os.close(req_r)
                self._req_w = req_w
            self.pid = pid
            self._res_r = res_r
            self._messages = iter_messages(res_r)
        else:
            self._proc, self._res_path = _spawn(func, args, out_w, err_w)
            self.pid = self._proc.pid
        os.close(out_w)
        os.close(err_w)
        self._readers = [
            threading.Thread(target=self._pump, args=(out_r, "stdout"), daemon=True),
            threading.Thread(target=self._pump, args=(err_r, "stderr"), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, fd: int, stream: str) -> None:
        decoder = _incremental_decoder()
        cap = max_output_bytes()
        kept = 0  # characters kept (and streamed) so far
        over = False  # past the cap: the rest goes to the spill file, unstreamed
        spill: Any = None  # the file holding the full text, while it can be written
        lost: OSError | None = None  # why the spill file could not be written (a full disk)
        rest_bytes = rest_lines = 0
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                if over:  # to the file, undecoded, unstreamed
                    rest_bytes += len(chunk)
                    rest_lines += chunk.count(b"\n")
                    if spill is not None:
                        try:
                            spill.write(chunk)
                        except OSError as exc:
                            _drop_spill(spill)
                            spill, lost = None, exc
                    continue
                text = decoder.decode(chunk)
                if not text:
                    continue
                if kept + len(text) > cap:
                    with self._out_lock:
                        whole = "".join(self._out[stream]) + text + decoder.decode(b"", True)
                    over = True
                    try:
                        spill = _spill_file(stream)
                        spill.write(whole.encode("utf-8", "surrogateescape"))
                    except OSError as exc:  # a full temp dir: the cap still holds
                        _drop_spill(spill)
                        spill, lost = None, exc
                    text = text[:cap - kept]
                    rest = whole[cap:]
                    rest_bytes = len(rest.encode("utf-8", "surrogateescape"))
                    rest_lines = rest.count("\n")
                kept += len(text)
                with self._out_lock:
                    self._out[stream].append(text)
                    if self._on_output is not None:
                        self._on_output(stream, text)
        finally:
            os.close(fd)
            if spill is not None:
                try:
                    spill.close()
                except OSError as exc:  # the last buffered bytes did not fit
                    _drop_spill(spill)
                    spill, lost = None, exc
            if over:
                if spill is not None:
                    where = f"the full text is in {spill.path}"
                else:
                    where = (f"not kept: writing them to {tempfile_dir()} failed "
                             f"({getattr(lost, 'strerror', None) or lost}); free space "
                             "there or point TMPDIR elsewhere")
                note = (f"\n[devd: {stream} truncated at {cap / 1e6:g} MB (DEVD_MAX_LOG_MB): "
                        f"{rest_bytes} more bytes, {rest_lines} more lines; {where}]\n")
                with self._out_lock:
                    self._out[stream].append(note)
                    if self._on_output is not None:
                        self._on_output(stream, note)

    def attach(self, on_output: OutputCallback | None,
               on_event: Callable[[Any], None] | None) -> None:
        """Give an armed child its callbacks; output it printed so far goes there first."""
        with self._out_lock:
            if on_output is not None:
                for stream in ("stdout", "stderr"):
                    for text in self._out[stream]:
                        on_output(stream, text)
            self._on_output = on_output
            self._on_event = on_event

    def send(self, payload: Any, by_value: bool = True) -> None:
        """Hand an armed child its request (once); it has been waiting in ``receive()``.
        ``by_value=False`` when the payload holds none of the caller's own objects: plain
        pickle is ten times quicker than cloudpickle."""
        if self._req_w is None:
            raise RuntimeError("this child takes no request")
        try:
            Channel(self._req_w).send("request", payload, by_value=by_value)
        finally:
            os.close(self._req_w)
            self._req_w = None

    def next_message(self) -> tuple[str, Any] | None:
        """The child's next message (None once it closed its channel); for armed children."""
        return next(self._messages, None)

    def discard(self) -> None:
        """Kill a child nobody will wait for, and reap it."""
        if self._req_w is not None:
            os.close(self._req_w)
            self._req_w = None
        self.kill()
        try:
            self.wait()
        except OSError:
            pass

    def kill(self) -> None:
        """Stop the child at once (used to cancel or supersede a spin), and every process
        it started (its process group)."""
        self.killed = True
        self._kill_group()

    def _kill_group(self) -> None:
        """SIGKILL the child's process group: the child and what it left running."""
        if self.pid <= 0:
            return
        try:
            if not hasattr(os, "killpg"):  # Windows: no process groups
                raise OSError("no process groups")
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            try:  # not a group leader (yet): the child alone
                if self._proc is not None:
                    self._proc.kill()
                else:
                    os.kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass

    def wait(self) -> ChildOutcome:
        try:
            return self._wait()
        except BaseException:  # Ctrl-C (KeyboardInterrupt) in the waiting process
            self.kill()
            raise

    def _wait(self) -> ChildOutcome:
        messages: list[tuple[str, Any]] = []
        if self.forked:
            # Events (live card updates) go on as they arrive, while the step still runs.
            final = False
            for kind, payload in self._messages:
                if kind in ("result", "error") or self._on_event is None:
                    messages.append((kind, payload))
                    final = kind in ("result", "error")
                    if final:  # its last word: output is complete, exit is a formality
                        break
                elif kind == "event":  # a typed event (devd/child/request.py's ChildEvent)
                    self._on_event(payload)
            os.close(self._res_r)
            # The step is over: what it left running (a subprocess, a grandchild holding
            # our pipes) goes with it. The child is not reaped yet, so its pid still
            # names its group.
            self._kill_group()
            if final:
                # Tearing down a big address space takes milliseconds: reap it aside.
                _reap_aside(self.pid)
                code = 0
            else:
                _, status = os.waitpid(self.pid, 0)
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) \
                    else os.WEXITSTATUS(status)
                scratch.remove(self.pid)
        else:
            assert self._proc is not None
            code = self._proc.wait()
            self._kill_group()
            scratch.remove(self.pid)
            assert self._res_path is not None
            fd = os.open(self._res_path, os.O_RDONLY)
            try:
                messages = list(iter_messages(fd))
            finally:
                os.close(fd)
                os.unlink(self._res_path)
        import time

        # The group is gone, so the pipes close once the readers have drained them. A
        # process that left the group (setsid) and keeps our pipes open must not hang us:
        # wait while output still arrives, give up after a second without any.
        deadline = time.monotonic() + 1.0
        seen = -1
        for reader in self._readers:
            while reader.is_alive():
                reader.join(timeout=0.05)
                count = len(self._out["stdout"]) + len(self._out["stderr"])
                if count != seen:
                    seen, deadline = count, time.monotonic() + 1.0
                elif time.monotonic() > deadline:
                    break
        outcome = ChildOutcome(
            stdout="".join(self._out["stdout"]), stderr="".join(self._out["stderr"])
        )
        got_result = False
        for kind, payload in messages:
            if kind == "result":
                outcome.value = payload
                got_result = True
            elif kind == "error":
                outcome.crashed = str(payload)
                got_result = True
            elif kind == "event" and self._on_event is not None:
                self._on_event(payload)
        outcome.exit_code = code
        if not got_result:
            outcome.crashed = _describe_exit(outcome.exit_code)
        return outcome


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    scratch.remove(pid)  # the throwaway task of a spin it ran, if it did
    _reaping.discard(pid)


_REAPER_LOCK = threading.Lock()
_reaps: queue.SimpleQueue[int] | None = None
_reaping: set[int] = set()  # handed to the reaper thread, not reaped yet
_reaper_pid = 0


def _reap_aside(pid: int) -> None:
    """Reap ``pid`` on one long-lived thread: starting a thread per spin costs the spin
    a thread switch (a millisecond on a busy machine) before its result goes out."""
    global _reaps, _reaper_pid, _reaping
    with _REAPER_LOCK:
        if _reaps is None or _reaper_pid != os.getpid():  # first use, or in a fork
            _reaps, _reaper_pid, _reaping = queue.SimpleQueue(), os.getpid(), set()
            threading.Thread(target=_reap_forever, args=(_reaps,), name="devd-reap",
                             daemon=True).start()
        _reaping.add(pid)
        _reaps.put(pid)


def _reap_forever(pids: queue.SimpleQueue[int]) -> None:
    while True:
        _reap(pids.get())


def _reap_the_rest() -> None:
    """At exit: reap here what the reaper thread (a daemon thread, stopped at exit) has
    not finished, so that their scratch folders go too."""
    if _reaper_pid == os.getpid():
        for pid in list(_reaping):
            _reap(pid)


atexit.register(_reap_the_rest)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGKILL:
            return f"the step process was killed ({name}): cancelled, or out of memory"
        return f"the step process died with {name}"
    return f"the step process exited with code {code} before finishing (os._exit or sys.exit?)"


def _incremental_decoder() -> codecs.IncrementalDecoder:
    import codecs

    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def _spawn(
    func: Callable[..., Any], args: tuple[Any, ...], out_w: int, err_w: int
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a fresh interpreter that runs ``func(*args)`` (the no-fork path)."""
    import subprocess
    import tempfile

    fd, res_path = tempfile.mkstemp(prefix="devd-result-")
    os.close(fd)
    payload = cloudpickle.dumps((func, args))
    proc = subprocess.Popen(
        [sys.executable, "-m", "devd.common._spawned", res_path],
        stdin=subprocess.PIPE,
        stdout=out_w,
        stderr=err_w,
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(payload)
    proc.stdin.close()
    return proc, res_path


def run_in_child(
    func: Callable[..., Any],
    *args: Any,
    on_output: OutputCallback | None = None,
    on_event: Callable[[Any], None] | None = None,
) -> ChildOutcome:
    """Run ``func(*args)`` in a child and wait for it."""
    return ChildProcess(func, args, on_output=on_output, on_event=on_event).wait()
