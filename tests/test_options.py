"""SpinOptions and how clients spell it: one option is a field and a row, nowhere else."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from devd.common.errors import DevdError
from devd.common.options import SpinOptions
from devd.common.optiontable import SPIN_SPELLINGS


def test_every_option_has_a_row_and_every_row_an_option() -> None:
    fields = [f.name for f in dataclasses.fields(SpinOptions) if f.name != "target"]
    rows = [row.field for row in SPIN_SPELLINGS]
    assert sorted(rows) == sorted(fields)
    assert len(set(rows)) == len(rows)


def test_spellings_are_unique_and_complete() -> None:
    flags = [row.flag for row in SPIN_SPELLINGS if row.flag]
    wires = [row.wire for row in SPIN_SPELLINGS if row.wire]
    dests = [row.dest for row in SPIN_SPELLINGS if row.flag]
    for names in (flags, wires, dests):
        assert len(set(names)) == len(names)
    for row in SPIN_SPELLINGS:
        assert row.flag or row.wire, f"{row.field}: spelled by no client"
        assert row.kind in ("flag", "value", "many", "pairs")
        assert len(row.metavar) == {"flag": 0, "value": 1, "many": 1, "pairs": 2}[row.kind]
        assert row.doc


def test_keywords_become_options_in_one_place() -> None:
    plain = SpinOptions.of("train")
    assert plain == SpinOptions("train")
    given = {"k": 3}
    options = SpinOptions.of("train", artifacts=given, persist=True, artifacts_module=None,
                             debug_timeout=None)
    given["k"] = 4  # the options hold their own copy
    assert options.artifacts == {"k": 3} and options.persist
    assert options.artifacts_module is None and options.debug_timeout == 120.0
    changed = SpinOptions.of(options, pdb=True)
    assert changed.pdb and changed.artifacts == {"k": 3} and changed.target == "train"
    assert SpinOptions.of(options) is options
    with pytest.raises(TypeError):
        SpinOptions.of("train", artifact={"k": 3})  # a misspelt option is no option
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.persist = False  # type: ignore[misc]


@pytest.mark.parametrize("timeout", [0, -1, "soon"])
def test_a_bad_debug_timeout_is_bad_input(timeout: object) -> None:
    with pytest.raises(DevdError, match="positive number of seconds"):
        SpinOptions("train", debug_timeout=timeout)  # type: ignore[arg-type]


def test_a_command_line_becomes_the_same_options_locally_and_on_the_wire(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devd.cli.main import _quick_spin_args, build_parser
    from devd.cli.spin import _given_options, _spin_params

    monkeypatch.chdir(tmp_path)
    argv = ["spin", "flow.py", "train", "--artifacts-module", "over.py", "--config", "cfg",
            "c.toml", "--config-value", "other", '{"a": 1}', "--persist", "--debug",
            "--debug-timeout", "7"]
    for args in (_quick_spin_args(argv), build_parser().parse_args(argv)):
        assert args is not None
        options = SpinOptions.of(args.target, **{row.field: value
                                                 for row, value in _given_options(args)})
        assert options == SpinOptions("train", artifacts_module="over.py",
                                      config={"cfg": "c.toml"},
                                      config_value={"other": '{"a": 1}'}, persist=True,
                                      debug=True, debug_timeout=7.0)
        params = _spin_params(args)
        here = os.getcwd()
        assert params == {
            "uri": params["uri"], "workDoneToken": "devd-cli", "step": "train",
            "artifactsModule": os.path.join(here, "over.py"),
            "config": {"cfg": os.path.join(here, "c.toml")},
            "configValue": {"other": '{"a": 1}'},
            "persist": True, "fromSpin": False, "debug": True, "debugTimeout": 7.0}
    pathspec = _spin_params(build_parser().parse_args(["spin", "flow.py", "1/train"]))
    assert pathspec["pathspec"] == "1/train" and "step" not in pathspec


def test_a_spin_request_carries_the_options() -> None:
    from devd.child.request import SpinRequest

    options = SpinOptions("train", artifacts={"k": 1}, config_value={"cfg": "x"})
    request = SpinRequest("f.py", "/", "train", "1", [], None, options, [], True)
    assert request.options is options and request.config_overrides
    persisted = dataclasses.replace(request, options=options.changed(persist=True))
    # a child prepared for a throwaway spin never runs one that is persisted
    assert persisted.prepared_key() != request.prepared_key()
    other = dataclasses.replace(request, options=options.changed(artifacts={"k": 2}))
    assert other.prepared_key() == request.prepared_key()  # overrides come with the request


def test_the_python_api_takes_options_or_keywords_alike(in_project: Path) -> None:
    import devd

    by_keywords = devd.spin("linear_flow.py", "double", artifacts={"x": [10, 20]})
    by_value = devd.spin("linear_flow.py", devd.SpinOptions("double", artifacts={"x": [10, 20]}))
    assert by_keywords.ok and by_value.ok
    assert by_keywords.artifacts["y"] == by_value.artifacts["y"]
    with devd.Session("linear_flow.py", prepare=False) as session:
        changed = session.spin(devd.SpinOptions("double"), artifacts={"x": [1]})
        assert changed.ok and changed.artifacts["x"] == [1]
        with pytest.raises(DevdError, match="needs the daemon"):
            session.spin("double", from_spin=True)  # only the daemon keeps spins to chain on


def test_hooks_are_one_value_beside_the_options() -> None:
    """How a caller follows a spin is a SpinHooks; keyword calls split into it and the
    options in one place (Session.spin), a misspelt keyword still being no option."""
    from devd.common.options import SpinHooks

    hooks, rest = SpinHooks.split({"on_output": print, "diff": True, "persist": True})
    assert hooks == SpinHooks(on_output=print, diff=True) and rest == {"persist": True}
    assert hooks.want_values and not hooks.want_private
    with pytest.raises(TypeError):
        SpinOptions.of("train", **SpinHooks.split({"diffs": True})[1])
