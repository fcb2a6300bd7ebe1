"""Work a prepared child does while it waits, so that the spin does not pay for it.

A forked child starts with every page shared with the warm process: the first time it runs
a code path (numpy's ufuncs, the page-map probe, Metaflow's metadata writer) it takes a
copy-on-write fault per page it touches, about a millisecond in all. A prepared child runs
those paths once before its request comes, on throwaway data, so they are its own by then.
Nothing here touches the step, its parents or Metaflow's state.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any


def pretouch(scratch: str | None, request: Any = None) -> None:
    """Run, on dummy data, what every spin runs after its step: the page-map proof (and its
    huge-page probe), the request's unpickling, the artifact rows, the result's pickling,
    the metadata writer (into ``scratch``, which the spin discards).

    A fork copies the page tables of the process's private memory but not those of its
    code (the interpreter's and its extension modules'): the first run of a code path in
    the child takes a fault per page of code it runs. The first ``pickle.loads`` of a
    fresh child costs ~0.25 ms that way, its second ~0.02 ms."""
    from ..common.channel import dumps_message
    from ..common.hugemap import cow_splits_huge
    from ..common.pagecheck import private_buffer, written_pages
    from ..common.summary import describe
    from .request import ChildResult

    cow_splits_huge()  # the huge-page probe: tested once per child, before the request

    probe = bytearray(b"\1" * 8192)  # held while its pages are read
    where = private_buffer(probe)
    if where is not None:  # probes the kernel once (cached per process), then reads the map
        written_pages(*where)
    if request is not None:  # as the request will come: pickled by the warm process
        pickle.loads(dumps_message(("request", request)))
    np = sys.modules.get("numpy")
    rows = [describe("x", 1), describe("y", 0.5), describe("z", "text")]
    if np is not None:
        rows.append(describe("a", np.zeros(2)))
    pickle.loads(dumps_message(("result", ChildResult(
        ok=True, artifacts=rows, values={"x": pickle.dumps(1, protocol=pickle.HIGHEST_PROTOCOL)},
        parent_values={"a": ("F/1/start/1", "a")}, error=None, next_steps=["end"],
        run_id="1", task_id="1", persisted_root=None, cards=[], notices=[], duration_s=0.0,
        kept={"a": "page map"}))))
    if scratch:
        from .metawrite import dump_json

        path = os.path.join(scratch, "devd-pretouch.json")
        dump_json(path, {"field_name": "x", "value": "1", "tags": []})
        os.unlink(path)
