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


def _throwaway_task(root: str) -> dict[str, object]:
    """In a forked child, as a spin without --persist: register a task through Metaflow's
    spin provider and store a DONE marker through its spin storage, then read them back."""
    from metaflow.plugins.datastores.spin_storage import SpinStorage
    from metaflow.plugins.metadata_providers.spin import SpinMetadataProvider

    from devd.child import writebehind

    SpinStorage.SYSROOT_VAR = root
    install()
    writebehind.install()
    meta = SpinMetadataProvider._create_and_get_metadir(  # type: ignore[attr-defined]
        "WbFlow", "1", "train", "2")
    SpinMetadataProvider._save_meta(meta, {"_self": {"task_id": "2"}})  # type: ignore[attr-defined]
    storage = SpinStorage(SpinStorage.get_datastore_root_from_config(lambda *a, **k: None))
    storage.save_bytes(iter([("WbFlow/1/train/2/0.DONE.lock", _Stream(b"done"))]))
    files_before_reading = sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                                  if p.is_file())
    seen = storage.is_file(["WbFlow/1/train/2/0.DONE.lock"])[0]
    task = SpinMetadataProvider._read_json_file(  # type: ignore[attr-defined]
        os.path.join(meta, "_self.json"))
    return {"before": files_before_reading, "done": seen, "task": task}


class _Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data


def test_a_throwaway_spins_files_are_written_when_something_reads_them(tmp_path: Path) -> None:
    """devd/child/writebehind.py: nothing on disk until a read, then all of it, in order."""
    from devd.common.forking import run_in_child

    seen = run_in_child(_throwaway_task, str(tmp_path)).value
    assert seen["before"] == []  # queued: a spin nobody reads from writes none of it
    assert seen["done"] is True  # a read through the storage wrote what was queued first
    task = seen["task"]
    assert task == {"task_id": "2"}
    assert (tmp_path / ".metaflow_spin/WbFlow/1/train/2/0.DONE.lock").read_bytes() == b"done"
