"""Prepared children: the next spin's child is forked ahead of time and waits for it.

Each test makes sure a prepared child was really used (its result reports the time it
waited, ``child.idle``) or really refused, and that what the spin returns is exactly what
a freshly forked child would have returned.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from devd import DevdError, Session
from devd.common.warmstore import WarmStore

FLOW = '''\
import os
import time

from metaflow import FlowSpec, step
import helper_mod

print("imported {name}")
_hold = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hold")
_until = time.monotonic() + 60
while os.path.exists(_hold) and time.monotonic() < _until:
    time.sleep(0.05)  # a flow that is slow to import while "hold" exists (cancel test)


class {name}(FlowSpec):
    @step
    def start(self):
        self.x = 3
        self.next(self.compute)

    @step
    def compute(self):
        self.y = self.x * helper_mod.FACTOR + OFFSET
        if getattr(self, "hold", None):
            open(self.hold, "w").close()
        print("y is", self.y)
        self.next(self.end)

    @step
    def end(self):
        pass


OFFSET = 0

if __name__ == "__main__":
    {name}()
'''


@pytest.fixture
def flow(in_project: Path, request: pytest.FixtureRequest) -> Path:
    """A flow of its own (it imports a helper module next to it), run once for real."""
    from tests.conftest import run_flow

    name = "Prep" + request.node.name.split("[")[0].replace("test_", "").title().replace("_", "")
    folder = in_project / name.lower()
    folder.mkdir()
    (folder / "helper_mod.py").write_text("FACTOR = 2\n")
    path = folder / "prep_flow.py"
    path.write_text(FLOW.format(name=name))
    run_flow(folder, "prep_flow.py")
    os.chdir(folder)
    return path


def wait_prepared(session: Session) -> None:
    """Until the child prepared after the last spin has imported the flow."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        prepared = session.prepared.current
        if prepared is not None and "imported" in "".join(prepared.child._out["stdout"]):
            return
        time.sleep(0.01)
    raise AssertionError("no child was prepared after the last spin")


def spin_prepared(session: Session, step: str = "compute", **kwargs):
    """Spin once the prepared child is ready (it is made in the background)."""
    wait_prepared(session)
    return session.spin(step, **kwargs)


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path, ns=(1, 1))  # a different mtime even within one clock tick


def test_the_next_spin_uses_the_prepared_child(flow: Path) -> None:
    with Session(flow) as s:
        first = s.spin("compute")
        assert first.ok and "child.idle" not in first.timings
        second = spin_prepared(s)
        assert second.ok, second.error
        assert "child.idle" in second.timings
        assert second.artifacts["y"] == first.artifacts["y"] == 6
        # output printed while the child was being prepared still belongs to the spin, once
        assert second.stdout.count("imported") == 1 and "y is 6" in second.stdout


def test_output_streams_to_the_spin_that_takes_the_child(flow: Path) -> None:
    with Session(flow) as s:
        s.spin("compute")
        seen: list[str] = []
        result = spin_prepared(s, on_output=lambda stream, text: seen.append(text))
        assert "child.idle" in result.timings
        assert "".join(seen) == result.stdout


def test_overrides_come_with_the_request(flow: Path) -> None:
    with Session(flow) as s:
        s.spin("compute")
        result = spin_prepared(s, artifacts={"x": 10})
        assert "child.idle" in result.timings
        assert result.artifacts["y"] == 20


def test_an_edited_flow_file_is_never_run_stale(flow: Path) -> None:
    source = flow.read_text()
    with Session(flow) as s:
        assert s.spin("compute").artifacts["y"] == 6
        wait_prepared(s)  # the flow file was stamped before this child imported it
        rewrite(flow, source.replace("OFFSET = 0", "OFFSET = 100"))
        result = s.spin("compute")
        assert result.ok and result.artifacts["y"] == 106
        assert "child.idle" not in result.timings  # the prepared child was refused


def test_an_edited_helper_module_is_never_run_stale(flow: Path) -> None:
    with Session(flow) as s:
        assert s.spin("compute").artifacts["y"] == 6
        wait_prepared(s)
        time.sleep(0.5)  # helpers are stamped just after the import
        rewrite(flow.parent / "helper_mod.py", "FACTOR = 5\n")
        result = s.spin("compute")
        assert result.ok and result.artifacts["y"] == 15
        # and once the edit is old news, the next child is prepared from it
        again = spin_prepared(s)
        assert "child.idle" in again.timings and again.artifacts["y"] == 15


def test_a_syntax_error_then_its_fix(flow: Path) -> None:
    source = flow.read_text()
    with Session(flow) as s:
        assert s.spin("compute").ok
        wait_prepared(s)
        rewrite(flow, source.replace("self.y = self.x", "self.y = = self.x"))
        with pytest.raises(DevdError, match="SyntaxError"):
            s.spin("compute")
        rewrite(flow, source)
        time.sleep(0.2)  # a child prepared from the broken file gives way too
        fixed = s.spin("compute")
        assert fixed.ok and fixed.artifacts["y"] == 6


def test_another_step_does_not_take_the_child(flow: Path) -> None:
    with Session(flow) as s:
        s.spin("compute")
        other = spin_prepared(s, step="end")
        assert other.ok and "child.idle" not in other.timings


def test_close_and_eviction_end_the_prepared_child(flow: Path) -> None:
    store = WarmStore()
    s = Session(flow, store=store)
    s.spin("compute")
    spin_prepared(s)
    wait_prepared(s)
    pid = s.prepared.current.child.pid
    store.clear()  # its parents left the store: it must not keep their memory alive
    assert s.prepared.current is None
    assert not _alive(pid)
    s.spin("compute")
    wait_prepared(s)
    pid = s.prepared.current.child.pid
    s.close()
    assert not _alive(pid)


def test_the_next_spin_is_rehearsed_after_the_fork_sending_and_loading_nothing(
        flow: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after a prepared child is forked, the warm process goes through the next
    spin's steps on its preparing thread (so that the pages they write are copied then,
    not in the spin): it sends that child nothing, loads no parent that left the store,
    and what fails there is left for the spin itself to report."""
    from devd.common.options import SpinHooks, SpinOptions

    rehearsed: list[tuple[str, str]] = []
    real = Session._rehearse

    def spy(self: Session, options: SpinOptions, hooks: SpinHooks, last: object = None) -> None:
        real(self, options, hooks, last)
        rehearsed.append((options.target, type(last).__name__))

    monkeypatch.setattr(Session, "_rehearse", spy)
    store = WarmStore()
    with Session(flow, store=store) as s:
        s.spin("compute", artifacts={"x": 10})
        wait_prepared(s)
        deadline = time.monotonic() + 30
        while not rehearsed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rehearsed == [("compute", "ChildResult")]
        assert s.prepared.current.child._req_w is not None  # still waiting for its request
        result = s.spin("compute", artifacts={"x": 10})
        assert "child.idle" in result.timings and result.artifacts["y"] == 20
        parents = s.plan("compute").parents
        store.clear()
        s._rehearse(SpinOptions("compute"), SpinHooks(), None)
        assert not store.holds(parents)  # nothing loaded
        flow.rename(flow.with_suffix(".gone"))
        s._rehearse(SpinOptions("compute"), SpinHooks(), None)  # no flow: nothing raised


def test_prepare_false_forks_at_each_spin(flow: Path) -> None:
    with Session(flow, prepare=False) as s:
        s.spin("compute")
        time.sleep(0.2)
        assert s.prepared.current is None
        assert "child.idle" not in s.spin("compute").timings


def _alive(pid: int) -> bool:
    """Whether the process exists (a zombie counts as gone: it was killed, not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_spin_waiting_for_its_prepared_child_can_be_cancelled(flow: Path) -> None:
    import threading

    hold = flow.parent / "hold"
    with Session(flow) as s:
        # this spin leaves the hold file: the child prepared after it hangs importing
        assert s.spin("compute", artifacts={"hold": str(hold)}).ok
        wait_prepared(s)
        threading.Timer(1.0, s.cancel).start()
        started = time.monotonic()
        cancelled = s.spin("compute")
        assert time.monotonic() - started < 30
        assert not cancelled.ok and "killed" in cancelled.error.message
        hold.unlink()
        assert s.spin("compute").artifacts["y"] == 6


def test_configs_given_to_a_spin_are_never_those_a_child_was_prepared_with(
        in_project: Path) -> None:
    other = in_project / "prepared-other.json"
    other.write_text('{"lr": 0.9, "tag": "file"}')
    with Session("config_flow.py") as s:
        assert s.spin("train").artifacts["lr"] == 0.1
        wait_for_child(s)
        given = s.spin("train", config_value={"settings": {"lr": 0.5, "tag": "tuned"}})
        assert "child.idle" not in given.timings
        assert (given.artifacts["lr"], given.artifacts["env_tag"]) == (0.5, "tuned")
        wait_for_child(s)
        again = s.spin("train", config_value={"settings": {"lr": 0.5, "tag": "tuned"}})
        assert "child.idle" in again.timings  # prepared with these very values
        assert (again.artifacts["lr"], again.artifacts["env_tag"]) == (0.5, "tuned")
        wait_for_child(s)
        from_file = s.spin("train", config={"settings": str(other)})
        assert (from_file.artifacts["lr"], from_file.artifacts["env_tag"]) == (0.9, "file")
        wait_for_child(s)
        other.write_text('{"lr": 0.7, "tag": "edited"}')
        os.utime(other, ns=(1, 1))
        edited = s.spin("train", config={"settings": str(other)})
        assert "child.idle" not in edited.timings  # the Config file changed since
        assert (edited.artifacts["lr"], edited.artifacts["env_tag"]) == (0.7, "edited")


def wait_for_child(session: Session, settle: float = 2.0) -> None:
    """Until a child is prepared and has had time to set up, its task too, and wait at the
    gate (no print to wait for here)."""
    deadline = time.monotonic() + 30
    while session.prepared.current is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert session.prepared.current is not None
    time.sleep(settle)


def test_an_environment_changed_after_the_child_was_prepared_reaches_the_step(
        flow: Path, monkeypatch) -> None:
    source = flow.read_text().replace(
        "self.y = self.x * helper_mod.FACTOR + OFFSET",
        "self.y = self.x * helper_mod.FACTOR + int(os.environ.get('PREP_OFFSET', '0'))")
    rewrite(flow, source)
    with Session(flow) as s:
        assert s.spin("compute").artifacts["y"] == 6
        wait_prepared(s)
        monkeypatch.setenv("PREP_OFFSET", "1000")  # as a notebook cell would, between spins
        result = s.spin("compute")
        assert result.artifacts["y"] == 1006 and "child.idle" not in result.timings
        wait_prepared(s)
        again = s.spin("compute")  # prepared with it now
        assert again.artifacts["y"] == 1006 and "child.idle" in again.timings


GATED = '''\
from metaflow import FlowSpec, Parameter, current, step, timeout


class GatedFlow(FlowSpec):
    scale = Parameter("scale", default=2)

    @step
    def start(self):
        self.x = 3
        self.next(self.compute)

    @timeout(seconds=2)
    @step
    def compute(self):
        self.y = self.x * self.scale
        self.where = current.pathspec
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GatedFlow()
'''


@pytest.fixture
def gated(in_project: Path) -> Path:
    """A flow with a Parameter and a step under @timeout(2 s), run once for real."""
    from tests.conftest import run_flow

    folder = in_project / "gated"
    folder.mkdir(exist_ok=True)
    path = folder / "gated_flow.py"
    path.write_text(GATED)
    run_flow(folder, "gated_flow.py")
    os.chdir(folder)
    return path


def test_a_child_sets_its_task_up_ahead_and_no_decorator_runs_before_the_spin(
        gated: Path) -> None:
    """Metaflow's task set-up runs before the request (the "prestep" phase, then the wait);
    the decorators' hooks do not: @timeout's 2 s alarm would fire while the child waits 3 s
    for its request, and the spin would fail or be run by a new child."""
    with Session(gated) as s:
        first = s.spin("compute")
        assert first.ok and first.artifacts["y"] == 6
        wait_for_child(s, 1.0)
        time.sleep(2.0)
        again = s.spin("compute")
        assert again.ok, again.error
        assert again.timings["child.idle"] > 2.0 and "child.prestep" in again.timings
        assert again.artifacts["y"] == 6
        assert "/compute/" in again.artifacts["where"] != first.artifacts["where"]


def test_overrides_meet_a_task_set_up_ahead_unless_they_name_a_parameter(gated: Path) -> None:
    """An artifact override reaches the inputs of a task set up before it came; one that
    names a Parameter (read in the set-up) is refused, and a new child runs it right."""
    with Session(gated) as s:
        s.spin("compute")
        wait_for_child(s, 1.0)
        given = s.spin("compute", artifacts={"x": 10})
        assert "child.prestep" in given.timings and given.artifacts["y"] == 20
        wait_for_child(s, 1.0)
        plain = s.spin("compute")  # prepared with x=10: none of it stays
        assert "child.prestep" in plain.timings and plain.artifacts["y"] == 6
        wait_for_child(s, 1.0)
        scaled = s.spin("compute", artifacts={"scale": 5})
        assert "child.idle" not in scaled.timings  # refused: a new child ran it
        assert scaled.artifacts["y"] == 15
        wait_for_child(s, 1.0)
        again = s.spin("compute", artifacts={"scale": 5})
        assert "child.idle" in again.timings and "child.prestep" not in again.timings
        assert again.artifacts["y"] == 15


def test_a_joins_overrides_per_input_meet_a_task_set_up_ahead(in_project: Path) -> None:
    with Session("branch_flow.py") as s:
        assert s.spin("join").artifacts["vs"] == [11, 12, 13]
        a_input = next("/".join(p.input_path.split("/")[:3]) for p in s.plan("join").parents
                       if "/a/" in p.input_path)
        wait_for_child(s, 1.0)
        given = s.spin("join", artifacts={a_input: {"v": 100}})
        assert "child.prestep" in given.timings, given.timings
        assert given.artifacts["vs"] == [12, 13, 100]
        wait_for_child(s, 1.0)
        plain = s.spin("join")
        assert "child.prestep" in plain.timings and plain.artifacts["vs"] == [11, 12, 13]


def test_a_class_made_after_the_child_was_forked_reaches_it_by_value(gated: Path) -> None:
    """A notebook's class (in ``__main__``) made after the prepared child was forked: the
    request carrying its instance goes by cloudpickle's value, plain data by plain pickle."""
    import sys

    def init(self, v):
        self.v = v

    def times(self, k):
        return self.v * k

    with Session(gated) as s:
        s.spin("compute")
        wait_for_child(s, 1.0)
        main = sys.modules["__main__"]
        box = type("DevdBox", (), {"__init__": init, "__mul__": times})
        box.__module__ = "__main__"
        main.DevdBox = box  # type: ignore[attr-defined]  # plain pickle would find it here only
        try:
            result = s.spin("compute", artifacts={"x": box(10)})
        finally:
            del main.DevdBox  # type: ignore[attr-defined]
        assert result.ok, result.error
        assert "child.prestep" in result.timings and result.artifacts["y"] == 20
