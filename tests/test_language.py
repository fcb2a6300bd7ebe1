"""Completion after ``self.`` (issue 19, item 9): the names a step can really read, from the
flow's real model (Metaflow's graph, in a child) and the editor's unsaved text."""

from __future__ import annotations

from pathlib import Path

import pytest

from devd.core.flowmodel import load_flow_model
from devd.core.language import available_names, completion_source, step_for_completion

FLOWS = Path(__file__).resolve().parent / "flows"

JOIN_FLOW = '''\
from metaflow import FlowSpec, Parameter, step


class PriceFlow(FlowSpec):
    rate = Parameter("rate", default=0.1)

    @step
    def start(self):
        self.prices = [3, 1, 2]
        self.next(self.a, self.b)

    @step
    def a(self):
        self.low = min(self.prices)
        self.next(self.join)

    @step
    def b(self):
        self.high = max(self.prices)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.spread = inputs.b.high - inputs.a.low
        self.next(self.end)

    @step
    def end(self):
        print(self.spread)


if __name__ == "__main__":
    PriceFlow()
'''


@pytest.fixture(scope="module")
def price_flow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lang") / "price_flow.py"
    path.write_text(JOIN_FLOW)
    return path


def test_a_join_without_merge_offers_no_branch_artifacts(price_flow: Path) -> None:
    model = load_flow_model(str(price_flow))
    source = price_flow.read_text()
    names = available_names(model, source, "join", {"prices", "low", "high"})
    assert "prices" not in names and "low" not in names and "high" not in names, names
    assert names["spread"] == "set in this step 'join'"
    assert names["rate"] == "Parameter"
    after = available_names(model, source, "end", set())
    assert "spread" in after and "prices" not in after and "low" not in after, after


def test_a_join_with_merge_artifacts_offers_what_it_merges() -> None:
    path = FLOWS / "branch_flow.py"
    model = load_flow_model(str(path))
    source = path.read_text()
    names = available_names(model, source, "join", {"v", "base", "shared", "only_a"})
    assert {"base", "shared", "only_a", "vs", "from_a"} <= set(names), names
    assert "v" not in names, "excluded from merge_artifacts"
    after = available_names(model, source, "end", set())
    assert {"vs", "base", "only_a"} <= set(after) and "v" not in after, after


def test_a_new_line_after_a_steps_last_line_completes_that_step(price_flow: Path) -> None:
    """The editor's text, unsaved, with `self.` typed on a new line after start's last line:
    that line is start's (not outside every step), and the half-typed line does not hide the
    names the rest of the text assigns."""
    model = load_flow_model(str(price_flow))
    lines = price_flow.read_text().splitlines()
    at = next(i for i, row in enumerate(lines) if "self.next(self.a, self.b)" in row)
    lines.insert(at + 1, "        self.")
    text = "\n".join(lines) + "\n"
    assert model.step_at_line(at + 2) is None  # the saved file's model has no such line
    assert step_for_completion(model, text, at + 1) == "start"
    names = available_names(model, completion_source(text, at + 1), "start", set())
    assert "prices" in names and names["rate"] == "Parameter", names
    # Past the class body (a top-level line) is no step.
    assert step_for_completion(model, text, len(lines) - 1) is None
