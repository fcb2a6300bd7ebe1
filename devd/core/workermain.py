"""A warm worker of devd in another interpreter: the step's environment.

Started by devd/core/workers.py as ``PYTHON -c ... devd.core.workermain`` in the
interpreter a step runs in (its ``@pypi`` or ``@conda`` environment, the uv project's,
the one an extension's decorator names). devd and Metaflow are importable there the way
Metaflow makes itself importable in a step's environment, on the path rather than
installed: the daemon puts them first on ``sys.path`` and the few pure-Python packages
devd's spin path imports (cloudpickle, jinja2, markupsafe, debugpy) last, so the
environment's own versions of anything win. It keeps that environment's parents warm in
a ``Session`` per flow and forks a child per spin, exactly as the daemon does.

Messages both ways: devd/common/workerwire.py. A result's values travel as the step's
child pickled them, one by one, never unpickled here: the daemon reads each when first
asked for, and only those its interpreter can (the rest are shown by their rows).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import traceback
from typing import Any

from ..common.options import SpinHooks
from ..common.workerwire import WIRE, messages, portable, send


def main() -> None:  # pragma: no cover - runs in the worker's interpreter
    requests, replies, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    budget, idle = int(sys.argv[4]), float(sys.argv[5])
    os.chdir(root)
    from ..common.errors import DevdError
    from ..common.warmstore import WarmStore
    from .session import Session

    lock = threading.Lock()
    store = WarmStore(budget or None)
    sessions: dict[str, Session] = {}
    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
    current: list[tuple[int, Session]] = []  # the spin running, to cancel by its id

    def read() -> None:
        try:
            for kind, payload in messages(requests):
                if kind == "cancel":
                    for spin_id, session in list(current):
                        if spin_id == payload[0]:
                            session.cancel()
                else:
                    jobs.put((kind, *payload))
        finally:
            jobs.put(None)  # the daemon is gone, or speaks another devd's messages

    threading.Thread(target=read, name="devd-worker-read", daemon=True).start()
    send(replies, lock, "hello", {"pid": os.getpid(), "python": sys.executable,
                                  "wire": WIRE})
    while True:
        try:
            job = jobs.get(timeout=idle) if idle > 0 else jobs.get()
        except queue.Empty:
            break  # idle: the daemon starts a new worker when it needs one
        if job is None or job[0] == "exit":
            break
        _, spin_id, flow_file, options, keywords = job

        def relay(kind: str, spin_id: int = spin_id) -> Any:
            return lambda *payload: send(replies, lock, kind, spin_id, *payload)

        try:
            session = sessions.get(flow_file)
            if session is None:
                session = sessions[flow_file] = Session(flow_file, store=store, cwd=root,
                                                        in_worker=True)
            current[:] = [(spin_id, session)]
            result = session.spin(options, SpinHooks(
                on_output=relay("output"), on_card=relay("card"),
                on_debug_ready=relay("debugReady"), **keywords))
            bare, values = portable(result)  # the child's pickles, passed on unread
            send(replies, lock, "result", spin_id, bare, store.total_bytes, blobs=values)
        except DevdError as exc:
            send(replies, lock, "refused", spin_id, str(exc))
        except BaseException:  # noqa: BLE001 - the daemon reports it as the spin's failure
            send(replies, lock, "error", spin_id, traceback.format_exc())
        finally:
            current.clear()
    for session in sessions.values():
        session.close()


if __name__ == "__main__":  # pragma: no cover
    main()
