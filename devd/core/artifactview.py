"""One recorded artifact's value, for the runs explorer's pane: read through Metaflow's
Client and described by kind (a DataFrame's head with shape and dtypes, an array's shape,
dtype and stats, an image, text or JSON pretty-printed, anything else as a bounded repr),
then rendered as a self-contained page. Everything is unpickled and rendered here, in the
daemon: the editor only shows the page. Every part is bounded, whatever the value's size:
a value stored bigger than ``LOAD_LIMIT`` is not loaded at all, only named with its size.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from ..common.errors import DevdError
from ..common.summary import bounded_repr, human_bytes, size_bytes, summarize, type_name

LOAD_LIMIT = 64 * 1024 * 1024  # stored bytes: a bigger value is named, not loaded
TEXT_CHARS = 64_000  # text, JSON and reprs shown
JSON_LIMIT = 1024 * 1024  # stored bytes: a bigger container is shown as a repr, not as JSON
IMAGE_BYTES = 4 * 1024 * 1024  # an image's encoded bytes in the page
IMAGE_SIDE = 1024  # a PIL image is shown scaled down to this
HEAD_ROWS, HEAD_COLUMNS, CELL_CHARS = 20, 20, 80  # a DataFrame's head
DTYPES_SHOWN = 200  # columns listed with their dtype
STATS_ELEMENTS = 10_000_000  # an array's stats are over its first this many elements

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


def read_artifact(pathspec: str, name: str, load_limit: int = LOAD_LIMIT) -> dict[str, Any]:
    """The view of artifact ``name`` of the recorded task ``pathspec`` (Flow/RUN/STEP/TASK):
    a dict with ``kind`` and what that kind shows. DevdError for an unknown task or name."""
    from metaflow import Task
    from metaflow.exception import MetaflowNotFound

    from ..common import clientcache

    if pathspec.count("/") != 3:
        raise DevdError(f"'{pathspec}' is not a task pathspec: use Flow/RUN/STEP/TASK")
    clientcache.install()  # the value is unpickled: a checked, verified cache
    try:
        task = Task(pathspec, _namespace_check=False)
        names = [a.id for a in task if not a.id.startswith("_")]
    except MetaflowNotFound:
        raise DevdError(f"no task {pathspec}; pick one from `devd runs` or the runs "
                        "explorer") from None
    if name not in names:
        raise DevdError(f"task {pathspec} has no artifact '{name}'; it has: "
                        f"{', '.join(sorted(names)) or 'none'}")
    artifact = task[name]
    stored = int(artifact.size or 0)
    head = {"name": name, "pathspec": pathspec, "storedBytes": stored}
    if stored > load_limit:
        return {**head, "kind": "big", "type": "object",
                "summary": f"{human_bytes(stored)} stored: too big to load here (over "
                           f"{human_bytes(load_limit)})"}
    try:
        value = artifact.data
    except Exception as exc:  # noqa: BLE001 - unpickling a user's type the daemon cannot import
        return {**head, "kind": "unreadable", "type": "object",
                "summary": f"cannot be loaded here ({type(exc).__name__}: "
                           f"{bounded_repr(str(exc), 300)})"}
    return {**head, **describe_value(value, stored)}


def describe_value(value: Any, stored: int = 0) -> dict[str, Any]:
    """What the pane shows of ``value``: ``kind`` (dataframe, array, image, json, text,
    repr), ``type``, ``summary``, ``sizeBytes`` when known, and the kind's own fields."""
    out: dict[str, Any] = {"type": type_name(value), "summary": summarize(value)}
    size = size_bytes(value)
    if size is not None:
        out["sizeBytes"] = size
    for kind in (_dataframe, _array, _image, _text, _json):
        try:
            found = kind(value, stored)
        except Exception:  # noqa: BLE001 - a user's look-alike type: the next kind, or its repr
            found = None
        if found is not None:
            return {**out, **found}
    return {**out, "kind": "repr", **_clip(bounded_repr(value, TEXT_CHARS))}


def _clip(text: str, limit: int = TEXT_CHARS) -> dict[str, Any]:
    if len(text) <= limit:
        return {"text": text, "truncated": False}
    return {"text": text[:limit], "truncated": True, "textChars": len(text)}


def _cell(value: Any) -> str:
    text = str(value)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def _dataframe(value: Any, _stored: int) -> dict[str, Any] | None:
    """A pandas DataFrame (a Series as its one column): shape, dtypes and the head."""
    if not (hasattr(value, "iloc") and hasattr(value, "dtypes") and hasattr(value, "shape")):
        return None
    if not hasattr(value, "columns"):
        if not hasattr(value, "to_frame"):
            return None
        value = value.to_frame()
    rows, columns = value.shape
    head = value.iloc[:HEAD_ROWS, :HEAD_COLUMNS]
    return {
        "kind": "dataframe", "shape": [int(rows), int(columns)],
        "dtypes": [[_cell(c), str(t)] for c, t in list(value.dtypes.items())[:DTYPES_SHOWN]],
        "columns": [_cell(c) for c in head.columns],
        "index": [_cell(i) for i in head.index],
        "rows": [[_cell(v) for v in row] for row in head.itertuples(index=False, name=None)],
    }


def _array(value: Any, _stored: int) -> dict[str, Any] | None:
    """A numpy array: shape, dtype, min/max/mean (over at most STATS_ELEMENTS) and the
    values numpy's own printing shows (it elides the middle of big arrays)."""
    import sys

    numpy = sys.modules.get("numpy")  # loaded if the value is one: unpickling imported it
    if numpy is None or not isinstance(value, numpy.ndarray):
        return None
    out: dict[str, Any] = {"kind": "array", "shape": [int(n) for n in value.shape],
                           "dtype": str(value.dtype)}
    if value.dtype.kind in "biuf" and value.size:
        flat = value.reshape(-1)[:STATS_ELEMENTS]
        data = flat.astype(numpy.float64) if value.dtype.kind == "b" else flat
        with numpy.errstate(all="ignore"):
            stats = {"min": float(numpy.nanmin(data)), "max": float(numpy.nanmax(data)),
                     "mean": float(numpy.nanmean(data, dtype=numpy.float64))}
        if value.dtype.kind == "f":
            stats["nan"] = int(numpy.isnan(flat).sum())
        stats["over"] = int(flat.size)
        out["stats"] = stats
    text = numpy.array2string(value, threshold=200, edgeitems=3, max_line_width=120)
    return {**out, **_clip(text)}


def _image(value: Any, _stored: int) -> dict[str, Any] | None:
    """A PIL image (scaled down, as PNG) or bytes that are a PNG or a JPEG."""
    if isinstance(value, bytes | bytearray):
        mime = next((m for magic, m in _MAGIC if value.startswith(magic)), None)
        if mime is None:
            return None
        data = bytes(value)
        width, height = _image_size(data)
        summary = f"{mime.split('/')[1].upper()} image" + (
            f" {width}x{height}" if width else "")
    elif type(value).__module__.startswith("PIL.") and hasattr(value, "save") \
            and hasattr(value, "size"):
        width, height = (int(n) for n in value.size)
        summary = summarize(value)
        shown = value.copy()
        shown.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
        if shown.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
            shown = shown.convert("RGBA")
        buffer = io.BytesIO()
        shown.save(buffer, format="PNG")
        data, mime = buffer.getvalue(), "image/png"
    else:
        return None
    out: dict[str, Any] = {"kind": "image", "summary": summary, "mime": mime, "width": width,
                           "height": height, "imageBytes": len(data)}
    if len(data) > IMAGE_BYTES:
        out["summary"] = (f"{mime} {width}x{height}, {human_bytes(len(data))}: too big to "
                          f"show (over {human_bytes(IMAGE_BYTES)})")
        return out
    out["data"] = base64.b64encode(data).decode("ascii")
    return out


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    """Width and height from the image's own header (PIL when installed)."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return int(image.size[0]), int(image.size[1])
    except Exception:  # noqa: BLE001 - no PIL, or a truncated image: a PNG's header, else unknown
        if data.startswith(b"\x89PNG") and len(data) >= 24:
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return None, None


def _text(value: Any, _stored: int) -> dict[str, Any] | None:
    """A string: JSON in it pretty-printed, else the text itself."""
    if not isinstance(value, str):
        return None
    start = value[:1000].lstrip()[:1]
    if start in ("{", "[") and len(value) <= JSON_LIMIT:
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return {"kind": "json", "chars": len(value),
                    **_clip(json.dumps(parsed, indent=2, ensure_ascii=False))}
    return {"kind": "text", "chars": len(value), **_clip(value)}


def _json(value: Any, stored: int) -> dict[str, Any] | None:
    """A dict or list of plain values (JSON's own types), pretty-printed as JSON."""
    if not isinstance(value, dict | list) or stored > JSON_LIMIT:
        return None
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        return None  # not JSON's types (a set, a user's class): its repr
    return {"kind": "json", **_clip(text)}


def render_value_page(view: dict[str, Any], nonce: str | None = None,
                      csp_source: str | None = None) -> str:
    """The pane's page for one artifact ``view`` (read_artifact): no script at all; with
    ``nonce`` (a VS Code webview) its one style carries it and images are data: URIs."""
    from .preview import _templates, check_webview

    if nonce is not None:
        check_webview(nonce, csp_source)
    return _templates().get_template("artifact.html.j2").render(
        v=view, nonce=nonce, stored=human_bytes(view.get("storedBytes")) or "",
        size=human_bytes(view.get("sizeBytes")) if view.get("sizeBytes") is not None else "")
