"""Work a prepared child does while it waits, so that the spin does not pay for it.

A forked child starts with every page shared with the warm process: the first time it runs
a code path (numpy's ufuncs, the page-map probe, Metaflow's metadata writer) it takes a
copy-on-write fault per page it touches, about a millisecond in all. A prepared child runs
those paths once before its request comes, on throwaway data, so they are its own by then.
Nothing here touches the step, its parents or Metaflow's state.
"""

from __future__ import annotations

import json
import os
import pickle
import sys


def pretouch(scratch: str | None) -> None:
    """Run, on dummy data, what every spin runs after its step: the page-map proof, the
    result's pickling, the metadata writer (into ``scratch``, which the spin discards)."""
    from ..common.pagecheck import _kernel_reports_exclusive, written_pages

    try:
        if _kernel_reports_exclusive() and "numpy" in sys.modules:
            probe = bytearray(b"\1" * 8192)
            from ..common.pagecheck import private_buffer

            where = private_buffer(probe)
            if where is not None:
                written_pages(*where)
    except OSError:
        pass
    pickle.dumps({"artifacts": [{"name": "x", "type": "int", "summary": "1"}], "ok": True})
    if scratch:
        from .metawrite import dump_json

        path = os.path.join(scratch, "devd-pretouch.json")
        dump_json(path, {"field_name": "x", "value": "1", "tags": []})
        os.unlink(path)
        json.loads(json.dumps({"x": [1, "a"]}))
