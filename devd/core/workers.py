"""Warm workers: devd in the interpreter a step runs in, one per (interpreter, project).

A step whose environment is another interpreter than the daemon's (devd/core/stepenv.py)
is spun by a worker started in that interpreter (devd/core/workermain.py), which keeps
that environment's parents warm and forks a child per spin as the daemon does. Workers
are started on the first spin that needs one, stop themselves after
``DEVD_WORKER_IDLE_S`` (default 900) seconds without a spin, and a worker that dies
mid-spin fails that spin with one line saying so, as a crashed child does.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..common.errors import DevdError
from ..common.options import SpinHooks, SpinOptions
from ..common.workerwire import WIRE, messages, send
from .stepenv import StepEnvironment

log = logging.getLogger("devd.workers")

# First on the worker's path (as Metaflow puts its own code first in a step's
# environment), then the environment's own packages, then these: what devd's spin path
# imports beyond the standard library, all pure Python, used only where the environment
# lacks them.
_FIRST = ("devd", "metaflow")
_LAST = ("cloudpickle", "jinja2", "markupsafe", "debugpy")

_BOOT = ("import sys; sys.path[0:0] = [{first!r}]; sys.path.append({last!r}); "
         "from devd.core.workermain import main; main()")


def idle_seconds() -> float:
    try:
        return float(os.environ.get("DEVD_WORKER_IDLE_S", "900"))
    except ValueError:
        return 900.0


_PATHS: list[str] = []
_PATHS_LOCK = threading.Lock()


def _path_dirs() -> tuple[str, str]:
    """Two private folders of links: the packages put first on a worker's path, and those
    put last (made once per process, 0700)."""
    with _PATHS_LOCK:
        if not _PATHS or not os.path.isdir(_PATHS[0]):
            base = tempfile.mkdtemp(prefix="devd-worker-path-")
            first, last = os.path.join(base, "first"), os.path.join(base, "last")
            for folder, names in ((first, _FIRST), (last, _LAST)):
                os.mkdir(folder, 0o700)
                for name in names:
                    spec = importlib.util.find_spec(name)
                    if spec is None or not spec.submodule_search_locations:
                        continue
                    os.symlink(next(iter(spec.submodule_search_locations)),
                               os.path.join(folder, name))
            _PATHS[:] = [first, last]
        return _PATHS[0], _PATHS[1]


@dataclass
class WorkerStatus:
    """One worker as ``devd status`` shows it."""

    environment: str
    python: str
    pid: int
    root: str
    warm_bytes: int
    idle_s: float
    spins: int


@dataclass
class _Pending:
    hooks: SpinHooks
    done: threading.Event = field(default_factory=threading.Event)
    answer: tuple[Any, ...] | None = None


class Worker:
    """One worker process and the spins it runs (one at a time, in order)."""

    def __init__(self, environment: StepEnvironment, root: str, budget_bytes: int) -> None:
        self.environment = environment
        self.root = root
        self.warm_bytes = 0
        self.spins = 0
        self.last_used = time.monotonic()
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self.dead: str | None = None
        first, last = _path_dirs()
        to_worker_r, self._to_worker = os.pipe()
        self._from_worker, from_worker_w = os.pipe()
        _widen(self._from_worker)
        env = dict(os.environ)
        env.update({k: v for k, v in environment.env.items() if k != "PYTHONPATH"})
        try:
            self.proc = subprocess.Popen(
                [environment.python, "-c", _BOOT.format(first=first, last=last),
                 str(to_worker_r), str(from_worker_w), root, str(budget_bytes),
                 str(idle_seconds())],
                cwd=root, env=env, pass_fds=(to_worker_r, from_worker_w),
                stdin=subprocess.DEVNULL, stdout=_stderr_fd(), start_new_session=True)
        except OSError as exc:
            for fd in (to_worker_r, self._to_worker, self._from_worker, from_worker_w):
                os.close(fd)
            raise DevdError(f"could not start devd's worker in {environment.python} "
                            f"({exc.strerror or exc}); check that environment") from exc
        finally:
            if hasattr(self, "proc"):
                os.close(to_worker_r)
                os.close(from_worker_w)
        self.pid = self.proc.pid
        threading.Thread(target=self._read, name="devd-worker", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.dead is None

    def _read(self) -> None:
        try:
            for kind, rest in messages(self._from_worker):
                if kind == "hello" and isinstance(rest, tuple) and rest and \
                        isinstance(rest[0], dict) and rest[0].get("wire") != WIRE:
                    self.dead = ("speaks another devd's messages (devd's files changed "
                                 "since the daemon started: restart it, `devd daemon "
                                 "stop`)")
                    self.proc.kill()
                    break
                if kind == "hello" or not isinstance(rest, tuple) or not rest:
                    continue  # a hello, or a message that could not be read
                with self._lock:
                    pending = self._pending.get(rest[0])
                if pending is None:
                    continue
                if kind in ("output", "card", "debugReady"):  # the spin's hooks, relayed
                    callback = {"output": pending.hooks.on_output,
                                "card": pending.hooks.on_card,
                                "debugReady": pending.hooks.on_debug_ready}[kind]
                    if callback is not None:
                        callback(*rest[1:])
                else:
                    pending.answer = (kind, *rest[1:])
                    pending.done.set()
        except Exception:  # a message it could not read: the worker ends
            log.exception("reading from the worker in %s", self.environment.python)
        finally:
            os.close(self._from_worker)
            code = self.proc.wait()
            self.dead = self.dead or _describe_end(code)
            log.info("worker %s in %s ended: %s", self.pid, self.environment.python,
                     self.dead)
            with self._lock:
                pending_all = list(self._pending.values())
            for pending in pending_all:
                pending.done.set()

    def spin(self, flow_file: str, options: SpinOptions,
             hooks: SpinHooks) -> tuple[Any, ...]:
        """Run one spin in the worker; its answer: ``("result", result, warm_bytes,
        values)``, ``("refused", line)``, ``("error", traceback)`` or ``("died", line)``."""
        spin_id = next(self._ids)
        pending = _Pending(hooks)
        with self._lock:
            self._pending[spin_id] = pending
        self.last_used = time.monotonic()
        try:
            if hooks.on_started is not None:
                hooks.on_started(_Handle(self, spin_id))
            try:
                wants = {"want_values": hooks.want_values, "want_private": hooks.want_private,
                         "diff": hooks.diff}  # the worker's own hooks relay the rest
                send(self._to_worker, self._send_lock, "spin", spin_id, flow_file, options,
                     wants)
            except OSError:
                pending.done.wait(5)  # the worker is gone: its end says why
            pending.done.wait()
            self.spins += 1
            if pending.answer is None:
                return ("died", f"devd's worker in {self.environment.python} (pid "
                        f"{self.pid}) {self.dead or 'ended'} during the spin")
            if pending.answer[0] == "result":
                self.warm_bytes = int(pending.answer[2])
            return pending.answer
        finally:
            with self._lock:
                self._pending.pop(spin_id, None)
            self.last_used = time.monotonic()

    def cancel(self, spin_id: int) -> None:
        try:
            send(self._to_worker, self._send_lock, "cancel", spin_id)
        except OSError:
            pass

    def stop(self) -> None:
        try:
            send(self._to_worker, self._send_lock, "exit")
            os.close(self._to_worker)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class _Handle:
    """What a spin's caller may do with the process running it: kill (cancel) it."""

    def __init__(self, worker: Worker, spin_id: int) -> None:
        self._worker = worker
        self._id = spin_id
        self.pid = worker.pid

    def kill(self) -> None:
        self._worker.cancel(self._id)


def _widen(fd: int) -> None:
    """A result's values (hundreds of KB for a list the step read) cross the pipe in one
    write rather than 64 KB at a time, each waiting for the reader to be scheduled (Linux;
    elsewhere, and past the system's limit, the pipe stays as it is)."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass


def _stderr_fd() -> int:
    """Where a worker's own prints go: this process's stderr (a client's stdout may be
    --json; a step's output is captured by its child, not printed by the worker)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return subprocess.DEVNULL


def _describe_end(code: int) -> str:
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"died ({name})"
    return "exited" if code == 0 else f"exited with code {code}"


class WorkerPool:
    """The workers of one project, by interpreter."""

    def __init__(self, root: str, budget_bytes: int | None = None) -> None:
        self.root = os.path.abspath(root)
        self.budget_bytes = budget_bytes or 0
        self._workers: dict[str, Worker] = {}
        self._lock = threading.Lock()

    def worker(self, environment: StepEnvironment) -> Worker:
        key = os.path.abspath(environment.python)
        with self._lock:
            worker = self._workers.get(key)
            if worker is None or not worker.alive:
                worker = self._workers[key] = Worker(environment, self.root,
                                                     self.budget_bytes)
            return worker

    def status(self) -> list[WorkerStatus]:
        now = time.monotonic()
        with self._lock:
            workers = [w for w in self._workers.values() if w.alive]
        return [WorkerStatus(w.environment.name, w.environment.python, w.pid, w.root,
                             w.warm_bytes, now - w.last_used, w.spins) for w in workers]

    def warm_bytes(self) -> int:
        return sum(w.warm_bytes for w in self.status())

    def close(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.stop()


def load_value(name: str, blob: bytes) -> Any:
    """A value a worker sent, or what stands in for one this interpreter cannot read."""
    from ..child.request import Unpicklable

    try:
        return pickle.loads(blob)
    except Exception as exc:  # noqa: BLE001 - a class only the step's environment has
        return Unpicklable("?", name, f"only the step's interpreter can read it: "
                           f"{type(exc).__name__}: {exc}")
