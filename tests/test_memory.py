"""The daemon's memory stays flat under repeated spins: the mechanisms, not RSS numbers.

RSS over thousands of spins is measured by bench/soak_bench.py; here each cause found
there is checked directly, so a regression fails fast and deterministically.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from devd.forking import fork_available, run_in_child


class _Node:
    """A reference cycle: only the garbage collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _one() -> int:
    return 1


@pytest.mark.skipif(not fork_available(), reason="needs os.fork")
def test_fork_keeps_the_parents_young_garbage_young() -> None:
    """Forking a child must not move the parent's young objects into the oldest
    generation: there, garbage waits for a full collection, which the daemon's heap makes
    rare, and every spin (a fork) piled more of it up (issue 9 item 9)."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()  # no automatic collection: only the explicit young one below
    try:
        node = _Node()
        alive = weakref.ref(node)
        del node
        outcome = run_in_child(_one)
        assert outcome.crashed is None and outcome.value == 1, outcome
        assert gc.isenabled() is False  # the fork restores the caller's gc state
        gc.collect(1)  # the two young generations only
        assert alive() is None, "the fork moved young garbage to the oldest generation"
    finally:
        if was:
            gc.enable()
    assert gc.isenabled() is was
