"""A spin's metadata files, written as Metaflow's local provider writes them, faster.

Metaflow's local (and spin) metadata provider writes one JSON file per field, each through
``tempfile.NamedTemporaryFile`` and a rename: about 70 µs a file, twenty files a spin. The
same atomic write (a private temporary file in the same directory, then a rename; an
existing file kept unless overwriting is allowed) with one ``os.write`` takes about 25 µs.
Installed on the spin provider only, in the child: runs recorded by ``devd run`` go through
Metaflow's own code.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

_TEMP_NAMES = itertools.count()


def dump_json(filepath: str, data: Any, allow_overwrite: bool = False) -> None:
    """Write ``data`` as JSON to ``filepath`` atomically, keeping an existing file unless
    ``allow_overwrite`` (LocalMetadataProvider._dump_json_to_file's contract)."""
    if not allow_overwrite and os.path.isfile(filepath):
        return
    body = json.dumps(data).encode()
    directory, name = os.path.split(filepath)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.{next(_TEMP_NAMES)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    try:
        os.rename(temp, filepath)
    except BaseException:
        os.unlink(temp)
        raise


def install() -> None:
    """Use ``dump_json`` for the spin metadata provider's files (this process only)."""
    from metaflow.plugins.metadata_providers.spin import SpinMetadataProvider

    def _dump_json_to_file(cls: type, filepath: str, data: Any,
                           allow_overwrite: bool = False) -> None:
        dump_json(filepath, data, allow_overwrite)

    SpinMetadataProvider._dump_json_to_file = classmethod(_dump_json_to_file)  # type: ignore[method-assign,assignment]
