"""The child's failures it survives are said, not swallowed; what the parent preloads too."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from devd.child import cardcapture as child_cards
from devd.child.state import State, Tee, report_problem
from devd.core import preload as preload_module


def test_a_survived_failure_is_one_line_past_the_steps_captured_output(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    tee = Tee(stream)
    tee.write("the step's own line\n")
    monkeypatch.setattr("sys.stderr", tee)
    report_problem("card c1: its data not read", ValueError("no data"))
    assert stream.getvalue() == ("the step's own line\n"
                                 "devd: card c1: its data not read: ValueError: no data\n")
    assert tee.text == ["the step's own line\n"]  # the card's stderr stays the step's


class _FailingCollector:
    def _serialize_components(self, uuid: str) -> list[Any]:
        return [{"type": "markdown", "source": "hi"}]

    def _get_latest_data(self, uuid: str, final: bool, mode: str) -> Any:
        raise RuntimeError("refresh data broken")


def test_card_data_that_cannot_be_read_is_reported_and_the_card_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import metaflow
    from metaflow.plugins.cards.card_creator import CardCreator

    monkeypatch.setattr(CardCreator, "create", CardCreator.create)  # restored afterwards
    monkeypatch.setattr(metaflow.current, "card", _FailingCollector(), raising=False)
    monkeypatch.setattr(State, "cards", [])
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", Tee(stream))
    child_cards.install_card_capture()
    CardCreator.create(None, card_uuid="u1", user_set_card_id="summary", mode="render",
                       final=True, decorator_attributes={"type": "default"})
    assert stream.getvalue() == ("devd: card summary: its data not read: RuntimeError: "
                                 "refresh data broken\n")
    [entry] = State.cards
    assert entry["data"] is None and entry["components"] == [{"type": "markdown",
                                                              "source": "hi"}]


def test_preload_logs_what_it_could_not_import(monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(preload_module, "MODULES", ("json", "devd_no_such_module"))
    with caplog.at_level(logging.WARNING, logger="devd.preload"):
        preload_module.preload()  # never raises: each child imports it itself
    [record] = [r for r in caplog.records if "devd_no_such_module" in r.getMessage()]
    assert "ModuleNotFoundError" in record.getMessage()


def _made_here() -> object:
    class Local:  # only cloudpickle carries it (by value); plain pickle refuses it
        def __init__(self) -> None:
            self.x = 3

    return Local()


def test_a_childs_answer_plain_pickle_refuses_still_arrives() -> None:
    """The channel sends a child's messages with plain pickle (fast) and falls back to
    cloudpickle for what only it can carry (devd/common/channel.py)."""
    from devd.common.forking import run_in_child

    assert run_in_child(_made_here).value.x == 3
    assert run_in_child(sorted, [3, 1, 2]).value == [1, 2, 3]
