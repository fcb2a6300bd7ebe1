"""Spinning a foreach body names the split it took and can take another (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest

import devd
from devd.common.errors import DevdError
from devd.common.report import SplitInfo


def test_a_foreach_body_names_its_split_and_spins_another(in_project: Path) -> None:
    first = devd.spin("foreach_flow.py", "body")
    assert first.ok, first.error and first.error.traceback
    assert first.split is not None and first.split["count"] == 6
    index = first.split["index"]
    items = [3, 1, 4, 1, 5, 9]
    assert f"split {index} of 6 · input {items[index]}" in first.notices, first.notices
    third = devd.spin("foreach_flow.py", "body", split=2)
    assert third.ok and third.artifacts["item"] == 4 and third.artifacts["idx"] == 2
    assert third.split == {"index": 2, "count": 6}
    assert "split 2 of 6 · input 4" in third.notices
    assert third.report().split == SplitInfo(2, 6)
    with pytest.raises(DevdError, match=r"no split 6 of 'body'.*0-5"):
        devd.spin("foreach_flow.py", "body", split=6)
    with pytest.raises(DevdError, match="not a foreach body"):
        devd.spin("foreach_flow.py", "join", split=1)
    plain = devd.spin("foreach_flow.py", "join")
    assert plain.split is None and plain.report().split is None


def test_the_pane_of_a_foreach_body_offers_another_split(in_project: Path) -> None:
    from devd.core.preview import render_preview

    result = devd.spin("foreach_flow.py", "body", split=1)
    page = render_preview(result, nonce="dGVzdC1ub25jZS0xMjM0NTY3OA==")
    assert "split 1 of 6 · input 1" in page
    assert 'data-action="pickSplit"' in page and "Other split…" in page
    assert 'data-action="pickSplit"' not in render_preview(result)  # no editor, no button
