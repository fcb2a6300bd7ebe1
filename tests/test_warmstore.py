"""Warm parents: loaded once through Metaflow's datastore, evicted least-recently-used."""

from __future__ import annotations

from pathlib import Path

from devd import Session
from devd.warmstore import WarmStore, load_task


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
