"""Warm parents: loaded once through Metaflow's datastore, evicted least-recently-used."""

from __future__ import annotations

from pathlib import Path

import pytest

from devd import Session
from devd.common.warmstore import WarmStore, load_task


def test_budget_evicts_least_recently_used_tasks(in_project: Path) -> None:
    with Session("linear_flow.py") as linear, Session("branch_flow.py") as branch:
        double_parents = linear.plan("double").parents
        end_parents = linear.plan("end").parents
        a_parents = branch.plan("a").parents
    sizes = {ref.pathspec: load_task(ref).size_bytes
             for ref in (*double_parents, *end_parents, *a_parents)}
    assert all(size > 0 for size in sizes.values())
    first, second, third = double_parents[0], end_parents[0], a_parents[0]
    store = WarmStore(budget_bytes=sizes[first.pathspec] + max(sizes[second.pathspec],
                                                               sizes[third.pathspec]))
    store.get(first)
    store.get(second)
    assert first.pathspec in store and second.pathspec in store
    store.get(first)  # now `second` is the least recently used
    store.get(third)
    assert first.pathspec in store and third.pathspec in store
    assert second.pathspec not in store
    assert store.total_bytes <= store.budget_bytes


def test_artifacts_are_loaded_once_and_shared(in_project: Path) -> None:
    store = WarmStore()
    with Session("linear_flow.py", store=store) as session:
        session.spin("double")
        warm = store.snapshot()
        assert len(warm) == 1 and warm[0].values["x"] == [1, 2, 3]
        first_values = warm[0].values
        session.spin("double")
        assert store.snapshot()[0].values is first_values  # not reloaded


def test_large_artifacts_load_only_when_read_then_stay_warm(
        in_project: Path, monkeypatch) -> None:
    import devd.common.warmstore as warmstore

    monkeypatch.setattr(warmstore, "EAGER_LIMIT_BYTES", 0)  # every public artifact is "large"
    store = WarmStore()
    with Session("linear_flow.py", store=store) as session:
        result = session.spin("double")  # reads x and alpha, never label
        assert result.ok and result.artifacts_loaded_by_step == ["alpha", "x"]
        rows = {r.name: r for r in result.artifact_rows}
        assert rows["label"].summary == "not loaded (the step did not read it)"
        assert rows["label"].type == "str"
        session.wait_warm()
        warm = store.snapshot()[0]
        assert "x" in warm.values and "label" not in warm.values
        assert result.artifacts["label"] == "lin"  # loads on first access, in this process
        assert "label" in warm.values
        again = session.spin("double")
        assert again.artifacts_loaded_by_step == []  # all it reads is warm now
        assert {r.name: r for r in again.artifact_rows}["label"].summary == \
            "len 3: 'lin'"


def test_a_big_parent_array_the_step_reads_is_not_copied_back_unless_changed(
        in_project: Path, monkeypatch) -> None:
    import devd.common.unchanged as unchanged
    import devd.common.warmstore as warmstore
    from tests.conftest import run_flow

    monkeypatch.setattr(warmstore, "EAGER_LIMIT_BYTES", 0)  # every array counts as big
    monkeypatch.setattr(unchanged, "BIG_BYTES", 0)
    (in_project / "array_flow.py").write_text(
        "import numpy as np\nfrom metaflow import FlowSpec, step\n\n\n"
        "class ArrayFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.arr = np.arange(1000, dtype=float)\n"
        "        self.next(self.use, self.mutate)\n\n"
        "    @step\n    def use(self):\n        self.total = float(self.arr.sum())\n"
        "        self.next(self.join)\n\n"
        "    @step\n    def mutate(self):\n        self.arr[0] = -1.0\n"
        "        self.next(self.join)\n\n"
        "    @step\n    def join(self, inputs):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    ArrayFlow()\n")
    run_flow(in_project, "array_flow.py")
    store = WarmStore()
    with Session("array_flow.py", store=store) as session:
        session.spin("use")
        session.wait_warm()
        used = session.spin("use")  # now warm: the step reads the warm array in place
        warm = store.snapshot()[0].values["arr"]
        assert used.artifacts["total"] == 499500.0
        assert used.artifacts["arr"] is warm  # passed down, no copy through the pipe
        mutated = session.spin("mutate")
        assert mutated.artifacts["arr"][0] == -1.0  # an in-place change is the task's value
        assert mutated.artifacts["arr"] is not warm and warm[0] == 0.0


PAGE_VERDICTS = r'''
import json, mmap, os, sys, time
import numpy as np
from devd.common import pagecheck
from devd.common.forking import run_in_child


def what_the_map_says(arr):
    """Counts of the array's pages the map shows not present and exclusive (the reason
    for a 'cannot tell'), and whether this kernel reports exclusive pages at all."""
    where = pagecheck.private_buffer(arr)
    if where is None:
        return "not private memory"
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        flags = pagecheck._read_flags(fd, *where)
    finally:
        os.close(fd)
    return {"pages": len(flags),
            "not present": len(flags) - len(pagecheck._pages_with(flags, pagecheck._PRESENT)),
            "exclusive": len(pagecheck._pages_with(flags, pagecheck._EXCLUSIVE)),
            "kernel reports exclusive": pagecheck._kernel_reports_exclusive()}


def verdicts(arr, write):
    before = pagecheck.untouched_since_fork(arr)
    if write:
        arr[len(arr) // 2] += 1.0
    return before, pagecheck.untouched_since_fork(arr), what_the_map_says(arr)


write = sys.argv[1] == "write"
attempts = []
for _ in range(8):
    arr = np.ones(4 << 20)  # 32 MB of private memory, every page written here
    parent = pagecheck.untouched_since_fork(arr)
    before, after, why = run_in_child(verdicts, arr, write).value
    attempts.append({"parent": parent, "before": before, "after": after, "map": why})
    if before is not None:
        break
    del arr
    time.sleep(0.25)
shared = np.frombuffer(mmap.mmap(-1, 1 << 20), dtype=np.float64)
print(json.dumps({"attempts": attempts, "shared": run_in_child(verdicts, shared, False).value[:2]}))
'''


@pytest.mark.parametrize("write", [False, True])
def test_the_page_map_tells_whether_a_child_wrote_an_inherited_array(write: bool) -> None:
    """The fast 'unchanged' proof for big parent arrays (a crc32 decides otherwise).

    In a fresh interpreter, where the array gets a mapping of its own. In the long test
    process malloc may serve it from the heap instead, and then its first page also holds
    other objects: the child writes those, so the map shows that page written and this
    all-or-nothing question gets no (a spin's proof re-checks only the 256 KB chunk holding
    such a page: docs/engine.md). "Cannot tell" is a fair answer now and then (a page the
    kernel is migrating reads as not present): a fresh array is tried again, and what the
    map said is in the message."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", PAGE_VERDICTS, "write" if write else "read"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    attempts = out["attempts"]
    assert all(a["parent"] is None for a in attempts), attempts  # the writer gets no proof
    if write:  # a written array is never vouched for, whatever else the map said
        assert all(a["after"] is None for a in attempts), attempts
    last = attempts[-1]
    assert (last["before"], last["after"]) == ((True, None) if write else (True, True)), \
        attempts
    # a view of private memory is vouched for like its base (tests/test_unchanged.py);
    # one of a shared mapping never is: a child's write would not show
    assert out["shared"] == [None, None]


def test_hover_on_a_parent_value_nobody_read_does_not_load_it(in_project: Path,
                                                              monkeypatch) -> None:
    import devd.common.warmstore as warmstore
    from devd.common.options import SpinOptions
    from devd.core.engine import Engine
    from devd.lsp.features import hover_text

    monkeypatch.setattr(warmstore, "EAGER_LIMIT_BYTES", 0)  # every artifact counts as big
    engine = Engine(str(in_project), None)
    path = str(in_project / "linear_flow.py")
    result = engine.spin(path, SpinOptions("double"))  # reads x, never label
    assert result.ok and not result.all_values.is_loaded("label")
    source = (in_project / "linear_flow.py").read_text()
    line = next(i for i, text in enumerate(source.splitlines()) if "sum(self.x)" in text)
    text = hover_text(engine, path, source, line, "label")
    assert text is not None and "`str`" in text and "not loaded" in text
    assert not result.all_values.is_loaded("label")
    assert all("label" not in t.values for t in engine.store.snapshot())
    assert "`list`" in hover_text(engine, path, source, line, "x")  # read: shown as is
    engine.close()


def test_parent_artifacts_stream_from_the_stored_file_into_one_copy(in_project: Path) -> None:
    """A big array is decompressed and unpickled as a stream straight into its final
    buffer (no whole blob, no second copy): the peak while warming stays near its size
    (bench/s3_bench.py measures it)."""
    import numpy as np

    from devd.common.warmstore import _load, open_task_datastore
    from tests.conftest import run_flow

    (in_project / "stream_flow.py").write_text(
        "import numpy as np\nfrom metaflow import FlowSpec, step\n\n\n"
        "class StreamFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n"
        "        self.arr = np.random.default_rng(3).random(2 << 20)\n"
        "        self.label = 'x' * 100\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    StreamFlow()\n")
    run_flow(in_project, "stream_flow.py")
    with Session("stream_flow.py") as session:
        ref = session.plan("end").parents[0]
    datastore = open_task_datastore(ref)

    def refuse(names):
        raise AssertionError(f"read whole through Metaflow's load_artifacts: {names}")

    datastore.load_artifacts = refuse
    values = _load(ref, datastore, ["arr", "label"], rehome=False)
    expected = np.random.default_rng(3).random(2 << 20)
    assert np.array_equal(values["arr"], expected) and values["label"] == "x" * 100
    assert isinstance(values["arr"].base, bytes)  # unpickled in place, not copied
    assert values["arr"].flags.writeable
