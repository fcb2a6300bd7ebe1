"""A big parent value the step only read is shown unchanged by the page map, not a checksum;
one it changed in place is caught, whatever loaded it (issue 18).

The proof runs in a forked child (devd.common.forking), as in a spin: the parent holds the
value, the child reads or writes it and asks ``unchanged.proof``.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest

from devd.common.forking import run_in_child
from devd.common.unchanged import Fingerprint, fingerprint, proof

MB = 1 << 20


def _loaded(kind: str) -> Any:
    """A 24 MB array as each loading path leaves it."""
    arr = np.random.default_rng(1).random(3 * MB)
    if kind == "owned":  # numpy's own memory (a rehomed array, a step's result)
        return arr
    if kind == "streamed":  # pickle.load from the blob's stream: a view of a bytes object
        loaded = pickle.load(io.BytesIO(pickle.dumps(arr, protocol=4)))
        assert isinstance(loaded.base, bytes)
        return loaded
    if kind == "protocol5":  # a pickle-5 stream: ndarray -> memoryview -> bytearray
        return pickle.load(io.BytesIO(pickle.dumps(arr, protocol=5)))
    if kind == "cloudpickle":  # a chained spin's values came back from a child this way
        return cloudpickle.loads(cloudpickle.dumps(arr))
    if kind == "bytes":
        return arr.tobytes()
    raise AssertionError(kind)


def _read_then_prove(value: Any, mark: Fingerprint, change: Any) -> str | None:
    if change is not None:
        change(value)
    else:
        total = float(np.frombuffer(value, dtype=np.uint8)[:1000].sum()) \
            if isinstance(value, bytes) else float(value[:1000].sum())
        assert total == total
    return proof(value, mark)


def _poke(value: Any) -> None:
    value[len(value) // 2] += 1.0


@pytest.mark.parametrize("kind", ["owned", "streamed", "protocol5", "cloudpickle", "bytes"])
def test_a_read_only_array_is_vouched_for_by_the_page_map(kind: str) -> None:
    value = _loaded(kind)
    mark = fingerprint(value)
    assert mark is not None
    assert run_in_child(_read_then_prove, value, mark, None).value == "page map"


@pytest.mark.parametrize("kind", ["owned", "streamed", "protocol5", "cloudpickle"])
def test_an_in_place_change_is_caught(kind: str) -> None:
    value = _loaded(kind)
    mark = fingerprint(value)
    assert run_in_child(_read_then_prove, value, mark, _poke).value is None
    value[0] = -1.0  # in the process that loaded it, the map cannot vouch: crc32s decide
    assert proof(value, mark) is None


def test_in_the_process_that_wrote_it_only_checksums_decide() -> None:
    value = _loaded("owned")
    mark = fingerprint(value)
    assert proof(value, mark) == "crc32"


def test_a_shared_mapping_is_never_vouched_for_by_the_page_map() -> None:
    """A child's write to MAP_SHARED memory lands in the page both processes map, which the
    page map never shows as the child's: only the checksum can tell."""
    shared = mmap.mmap(-1, 8 * MB)
    value = np.frombuffer(shared, dtype=np.float64)
    value[:] = 1.0
    mark = fingerprint(value)
    assert mark is not None
    assert run_in_child(_read_then_prove, value, mark, None).value == "crc32"
    assert run_in_child(_read_then_prove, value, mark, _poke).value is None


def _huge_array() -> Any:
    """A 24 MB array on huge pages, as the warm process keeps big parents (which also arms
    the probe its children test the huge-page path on); skips where the kernel cannot."""
    from devd.common import hugemap
    from devd.common.streamload import rehome_array

    value = rehome_array(np.random.default_rng(3).random(3 * MB))
    stretches = hugemap.huge_stretches(value.ctypes.data, value.nbytes)
    if not hugemap._probe or not stretches:
        pytest.skip("no huge pages or no PAGEMAP_SCAN on this kernel: the entry-by-entry "
                    "path is the one tested above")
    return value


def _huge_then_prove(value: Any, mark: Fingerprint, where: int | None) -> tuple[Any, ...]:
    from devd.common import hugemap, pagecheck

    trusted = hugemap.cow_splits_huge()
    if where is not None:
        value[where] += 1.0
    read_one_by_one = pagecheck._entry_by_entry(value.ctypes.data, value.nbytes)
    return trusted, sum(end - start for start, end in read_one_by_one), proof(value, mark)


def test_huge_pages_shared_with_the_warm_process_are_vouched_for_without_reading_them() -> None:
    value = _huge_array()
    mark = fingerprint(value)
    assert mark is not None
    trusted, read_bytes, how = run_in_child(_huge_then_prove, value, mark, None).value
    assert trusted is True  # this kernel splits a written shared huge page: the probe saw it
    assert read_bytes < 4 * MB  # at most the two ends not on a huge page, never all 24 MB
    assert how == "page map"


@pytest.mark.parametrize("where", [0, 3 * MB // 2 + 5, 3 * MB - 1])
def test_a_write_inside_a_huge_page_is_caught(where: int) -> None:
    """The written huge page is split in the child: its small pages are read entry by
    entry and the written one found (the start, the middle and the end of the array)."""
    value = _huge_array()
    mark = fingerprint(value)
    assert mark is not None
    trusted, _, how = run_in_child(_huge_then_prove, value, mark, where).value
    assert trusted is True
    assert how is None


def test_in_the_process_that_made_the_probe_huge_pages_are_not_trusted() -> None:
    from devd.common import hugemap

    _huge_array()
    assert hugemap.cow_splits_huge() is False  # nothing shared here: no write can show


def _container() -> dict[str, Any]:
    rng = np.random.default_rng(2)
    return {"features": pickle.load(io.BytesIO(pickle.dumps(rng.random(2 * MB)))),
            "labels": [rng.random(MB // 2), "small", 3], "meta": {"seed": 2}}


def _write_leaf(box: dict[str, Any]) -> None:
    box["labels"][0][7] = -1.0


def _write_skeleton(box: dict[str, Any]) -> None:
    box["meta"]["seed"] = 3


def _swap_leaves(box: dict[str, Any]) -> None:
    """Same buffers, other places: every page untouched, the value still changed."""
    box["features"], box["labels"][0] = box["labels"][0], box["features"]


def _replace_leaf(box: dict[str, Any]) -> None:
    box["labels"][0] = box["labels"][0].copy()  # same content, a new buffer


@pytest.mark.parametrize(("change", "expected"), [
    (None, "page map"), (_write_leaf, None), (_write_skeleton, None), (_swap_leaves, None),
    (_replace_leaf, "crc32"),
])
def test_arrays_inside_a_container_are_vouched_for_through_it(change: Any,
                                                             expected: str | None) -> None:
    box = _container()
    mark = fingerprint(box)
    assert mark is not None and len(mark.leaves) == 2

    def step(value: Any) -> str | None:
        if change is not None:
            change(value)
        return proof(value, mark)

    assert run_in_child(step, box).value == expected


def test_values_without_a_big_buffer_have_no_fingerprint() -> None:
    assert fingerprint({"a": np.ones(10), "b": "x" * 100}) is None
    assert fingerprint("x" * (2 * MB)) is None
    assert fingerprint(np.ones(10)) is None


def test_a_refcount_written_beside_the_buffer_costs_one_chunk_not_a_false_change() -> None:
    """A view of a bytes object: the bytes' header (its refcount) shares the first page with
    the data; a child that touches the refcount makes that page its own, and only that
    chunk is checksummed again."""
    value = _loaded("streamed")
    mark = fingerprint(value)

    def touch(arr: Any) -> str | None:
        keep = [arr.base for _ in range(10)]  # increments the bytes object's refcount
        verdict = proof(arr, mark)
        del keep
        return verdict

    assert run_in_child(touch, value).value == "page map"


# -- through real spins --------------------------------------------------------------------

FLOW = '''\
import numpy as np
from metaflow import FlowSpec, Parameter, step


class KeepFlow(FlowSpec):
    write = Parameter("write", default=False, type=bool)

    @step
    def start(self):
        rng = np.random.default_rng(5)
        self.big = rng.random(2 << 20)
        self.box = {"arr": rng.random(1 << 20), "tag": "t"}
        self.next(self.use)

    @step
    def use(self):
        self.first = float(self.big[:1000].sum()) + float(self.box["arr"][:10].sum())
        if self.write:
            self.big[5] = -1.0
            self.box["arr"][3] = 7.0
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    KeepFlow()
'''


@pytest.fixture(scope="module")
def keep_project(project: Path) -> Path:
    from tests.conftest import run_flow

    root = project / "keep"
    root.mkdir(exist_ok=True)
    (root / "keep_flow.py").write_text(FLOW)
    run_flow(root, "keep_flow.py")
    return root


def _spins(root: Path, **options: Any) -> tuple[Any, Any]:
    """A first spin (parents not warm yet), then the same spin on warm parents."""
    from devd.core.metaflowenv import bind_metaflow_root
    from devd.core.session import Session

    os.chdir(root)
    bind_metaflow_root()
    with Session("keep_flow.py") as session:
        first = session.spin("use", **options)
        session.wait_warm()
        return first, session.spin("use", **options)


def _check(first: Any, warm: Any, write: bool) -> None:
    assert first.ok and warm.ok, (first.error, warm.error)
    if write:
        assert warm.parents_kept == {}
        assert warm.artifacts["big"][5] == -1.0 and warm.artifacts["box"]["arr"][3] == 7.0
    else:
        assert warm.parents_kept == {"big": "page map", "box": "page map"}
        assert warm.artifacts["big"][5] != -1.0


def test_warm_parents_read_by_a_spin_are_passed_down_by_the_page_map(keep_project: Path) -> None:
    first, warm = _spins(keep_project)
    _check(first, warm, write=False)
    # the first spin read parents the child loaded itself: the map could not vouch
    assert set(first.parents_kept.values()) <= {"crc32"}


def test_a_spin_that_writes_warm_parents_returns_its_changes(keep_project: Path) -> None:
    _check(*_spins(keep_project, artifacts={"write": True}), write=True)


def test_parents_loaded_through_metaflows_own_load_artifacts(keep_project: Path,
                                                             monkeypatch) -> None:
    """The path for artifacts devd does not stream (other serializers)."""
    import devd.common.streamload as streamload

    monkeypatch.setattr(streamload, "streamable", lambda datastore, name: False)
    _check(*_spins(keep_project), write=False)


def test_chained_spins_keep_the_values_of_the_spin_before(keep_project: Path) -> None:
    """--from-spin: the parent values are a previous spin's, held by the engine."""
    from devd.common.options import SpinOptions
    from devd.core.engine import Engine

    os.chdir(keep_project)
    engine = Engine(str(keep_project), None)
    try:
        path = str(keep_project / "keep_flow.py")
        assert engine.spin(path, SpinOptions("start")).ok
        chained = engine.spin(path, SpinOptions("use", from_spin=True))
        assert chained.ok, chained.error
        assert chained.parents_kept == {"big": "page map", "box": "page map"}
    finally:
        engine.close()


SPAWNED = '''
import json, os, sys
os.environ["DEVD_NO_FORK"] = "1"
from devd.core.metaflowenv import bind_metaflow_root
from devd.core.session import Session
bind_metaflow_root()
with Session("keep_flow.py") as session:
    session.spin("use")  # the parents get warm here: the next spawned children load them
    session.wait_warm()
    out = {}
    for write in (False, True):
        result = session.spin("use", artifacts={"write": write})
        out[str(write)] = [result.ok, result.parents_kept, float(result.artifacts["big"][5])]
print(json.dumps(out))
'''


def test_the_spawn_path_is_vouched_for_too(keep_project: Path) -> None:
    """No fork (DEVD_NO_FORK=1, the Windows path): the spawned child loads the parents
    itself; a waiting holder process shares its pages, so the map still tells writes."""
    proc = subprocess.run([sys.executable, "-c", SPAWNED], cwd=keep_project,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert out["False"][:2] == [True, {"big": "page map", "box": "page map"}]
    assert out["True"][:2] == [True, {}] and out["True"][2] == -1.0
