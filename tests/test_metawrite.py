"""The spin's metadata writer keeps Metaflow's contract (devd/child/metawrite.py)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from devd.child.metawrite import dump_json, install


def test_writes_atomically_and_privately(tmp_path: Path) -> None:
    target = tmp_path / "attempt.json"
    dump_json(str(target), {"value": "0", "tags": ["a"]})
    assert json.loads(target.read_text()) == {"value": "0", "tags": ["a"]}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # as NamedTemporaryFile made it
    assert os.listdir(tmp_path) == ["attempt.json"]  # no temporary file left


def test_keeps_an_existing_file_unless_overwriting_is_allowed(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    dump_json(str(target), 1)
    dump_json(str(target), 2)
    assert json.loads(target.read_text()) == 1
    dump_json(str(target), 3, allow_overwrite=True)
    assert json.loads(target.read_text()) == 3


def test_a_value_json_cannot_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bad.json"
    try:
        dump_json(str(target), {"x": object()})
    except TypeError:
        pass
    assert os.listdir(tmp_path) == []


def test_installed_on_the_spin_provider_only(tmp_path: Path) -> None:
    from metaflow.plugins.metadata_providers.local import LocalMetadataProvider
    from metaflow.plugins.metadata_providers.spin import SpinMetadataProvider

    before = LocalMetadataProvider.__dict__["_dump_json_to_file"]
    saved = SpinMetadataProvider.__dict__.get("_dump_json_to_file")
    try:
        install()
        SpinMetadataProvider._dump_json_to_file(str(tmp_path / "m.json"), {"k": 1})
        assert json.loads((tmp_path / "m.json").read_text()) == {"k": 1}
        assert LocalMetadataProvider.__dict__["_dump_json_to_file"] is before
        assert SpinMetadataProvider.__dict__["_dump_json_to_file"] is not before
    finally:
        if saved is None:
            del SpinMetadataProvider._dump_json_to_file
        else:
            SpinMetadataProvider._dump_json_to_file = saved
