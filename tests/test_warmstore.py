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


def _page_verdicts(arr, write: bool) -> tuple:
    from devd.common.pagecheck import untouched_since_fork

    before = untouched_since_fork(arr)
    if write:
        arr[len(arr) // 2] += 1.0
    return before, untouched_since_fork(arr)


@pytest.mark.parametrize("write", [False, True])
def test_the_page_map_tells_whether_a_child_wrote_an_inherited_array(write: bool) -> None:
    """The fast 'unchanged' proof for big parent arrays (a crc32 decides otherwise)."""
    import numpy as np

    from devd.common.forking import run_in_child
    from devd.common.pagecheck import untouched_since_fork

    arr = np.ones(4 << 20)  # 32 MB of private memory, every page written here
    assert untouched_since_fork(arr) is None  # in the process that wrote it: no proof
    for _ in range(3):  # "cannot tell" is a fair answer now and then: a page the kernel is
        outcome = run_in_child(_page_verdicts, arr, write)  # migrating (compaction) reads
        if outcome.value[0] is not None:  # as not present; it must vouch again soon after
            break
    assert outcome.value == ((True, None) if write else (True, True))
    # a view of private memory is vouched for like its base (tests/test_unchanged.py);
    # one of a shared mapping never is: a child's write would not show
    import mmap

    shared = np.frombuffer(mmap.mmap(-1, 1 << 20), dtype=np.float64)
    assert run_in_child(_page_verdicts, shared, False).value == (None, None)


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
