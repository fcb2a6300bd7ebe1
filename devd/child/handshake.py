"""A prepared child's side of the handshake: it imports the flow and sets Metaflow up
ahead of time, then waits for the request, refusing it if a source file changed since
(see docs/engine.md, "Prepared children")."""

from __future__ import annotations

import os
from collections.abc import Callable

from .request import Outdated, SpinRequest
from .state import State


def stamp(paths: list[str]) -> list[tuple[str, int, int]]:
    """(path, mtime_ns, size) of each file; (path, -1, -1) for one that is gone."""
    stamps = []
    for path in paths:
        try:
            st = os.stat(path)
            stamps.append((path, st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((path, -1, -1))
    return stamps


def source_files(req: SpinRequest) -> list[str]:
    """The files this child's flow came from: the user's modules and Config files."""
    from ..common.loader import user_modules

    files = {os.path.abspath(req.flow_file)}
    for module in user_modules().values():  # wherever they are: next to it, or not
        if module.__file__:
            files.add(os.path.abspath(module.__file__))
    args = req.config_args
    files.update(os.path.abspath(args[i + 2]) for i, arg in enumerate(args[:-2])
                 if arg == "--config")
    files.update(req.data_files)
    return sorted(files)


def await_request(takes: Callable[[SpinRequest], bool] | None = None) -> SpinRequest | Outdated:
    """Block until the parent sends the request; refuse it if a source changed meanwhile,
    or if ``takes`` says this child cannot run it (the spin then runs in a new child)."""
    import datetime

    from ..common.childside import accept, receive

    req = receive()
    for path, mtime, size in State.stamps:
        if stamp([path])[0] != (path, mtime, size):
            return Outdated(path)
    if takes is not None and not takes(req):
        return Outdated(req.flow_file)
    accept()
    State.request = req
    State.created_at = datetime.datetime.now()
    return req
