"""An artifact's value for the runs explorer's pane (issue 20 item 2): read from a real run
through Metaflow's Client and rendered by the daemon, each kind its own way, every part
bounded; the page has no script and escapes whatever the value holds."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator

import pytest

pytest.importorskip("pandas")
pytest.importorskip("PIL")

from devd.common.errors import DevdError
from devd.core.artifactview import read_artifact, render_value_page
from tests.conftest import run_flow

VALUES_FLOW = '''\
import io

from metaflow import FlowSpec, step


class ValuesFlow(FlowSpec):
    @step
    def start(self):
        import numpy as np
        import pandas as pd
        from PIL import Image

        self.frame = pd.DataFrame({f"c{i}": range(i, i + 100) for i in range(30)})
        self.frame["name"] = ["<b>row</b> %d" % i for i in range(100)]
        grid = np.arange(2000 * 50, dtype=np.float64).reshape(2000, 50)
        grid[0, 0] = np.nan
        self.grid = grid
        self.picture = Image.new("RGB", (1600, 1200), (200, 30, 30))
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), (0, 90, 200)).save(buffer, format="PNG")
        self.png = buffer.getvalue()
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (0, 200, 90)).save(buffer, format="JPEG")
        self.jpeg = buffer.getvalue()
        self.text = "line one\\n<script>alert(1)</script>\\n" + "x" * 100_000
        self.doc = '{"a": [1, 2, {"b": "c"}], "d": null}'
        self.config = {"lr": 0.1, "layers": [64, 32], "name": "net"}
        self.tags = {"b", "a"}
        self.blob = bytes(3 * 1024 * 1024)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ValuesFlow()
'''


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The start task of one real run of ValuesFlow, this process bound to its project."""
    from devd.core.metaflowenv import bind_metaflow_root

    root = tmp_path_factory.mktemp("values")
    (root / "values_flow.py").write_text(VALUES_FLOW)
    run_id = run_flow(root, "values_flow.py")
    previous = os.getcwd()
    os.chdir(root)
    bind_metaflow_root()
    from metaflow import Step

    yield next(iter(Step(f"ValuesFlow/{run_id}/start", _namespace_check=False))).pathspec
    os.chdir(previous)


def _page(view: dict) -> str:
    html = render_value_page(view, nonce="n" * 24, csp_source="https://*.vscode-cdn.net")
    assert "<script" not in html.lower()  # no script at all, whatever the value holds
    policy = re.search(r'Content-Security-Policy" content="([^"]*)"', html)
    assert policy and "default-src 'none'" in policy.group(1)
    assert "img-src data:;" in policy.group(1) and "'unsafe-inline'" not in policy.group(1)
    return html


def test_a_dataframe_shows_its_head_shape_and_dtypes(task: str) -> None:
    view = read_artifact(task, "frame")
    assert view["kind"] == "dataframe" and view["shape"] == [100, 31]
    assert len(view["rows"]) == 20 and len(view["columns"]) == 20  # the head, bounded
    assert ["c0", "int64"] in view["dtypes"] and len(view["dtypes"]) == 31
    html = _page(view)
    assert 'id="head-rows"' in html and "the first 20 of 100 rows, 20 of 31 columns" in html
    assert "<th>c19</th>" in html and "<th>c20</th>" not in html


def test_a_frames_cells_are_escaped(task: str) -> None:
    view = read_artifact(task, "frame")
    view["columns"][0] = "<img src=x onerror=alert(1)>"
    html = _page(view)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_an_array_shows_shape_dtype_and_stats(task: str) -> None:
    view = read_artifact(task, "grid")
    assert view["kind"] == "array" and view["shape"] == [2000, 50]
    assert view["dtype"] == "float64" and view["sizeBytes"] == 2000 * 50 * 8
    stats = view["stats"]
    assert stats["min"] == 1.0 and stats["max"] == 2000 * 50 - 1 and stats["nan"] == 1
    assert stats["over"] == 2000 * 50
    assert "..." in view["text"] and len(view["text"]) < 5000  # numpy elides the middle
    html = _page(view)
    assert 'id="stats"' in html and "max <b>99999</b>" in html and "NaN <b>1</b>" in html


def test_images_show_as_images(task: str) -> None:
    from PIL import Image

    for name, mime, size in (("picture", "image/png", (1600, 1200)),
                             ("png", "image/png", (40, 30)), ("jpeg", "image/jpeg", (64, 48))):
        view = read_artifact(task, name)
        assert view["kind"] == "image" and view["mime"] == mime, name
        assert (view["width"], view["height"]) == size
        html = _page(view)
        assert f'src="data:{mime};base64,' in html
        import base64

        shown = Image.open(io.BytesIO(base64.b64decode(view["data"])))
        assert max(shown.size) <= 1024  # a big PIL image is scaled down for the pane


def test_text_and_json_are_pretty_and_bounded(task: str) -> None:
    text = read_artifact(task, "text")
    assert text["kind"] == "text" and text["truncated"] and len(text["text"]) == 64_000
    html = _page(text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "the first 64000 of 100035 characters" in html
    doc = read_artifact(task, "doc")
    assert doc["kind"] == "json" and doc["text"] == json.dumps(
        {"a": [1, 2, {"b": "c"}], "d": None}, indent=2)
    config = read_artifact(task, "config")
    assert config["kind"] == "json" and '"layers": [\n    64,' in config["text"]
    tags = read_artifact(task, "tags")
    assert tags["kind"] == "repr" and tags["text"] in ("{'a', 'b'}", "{'b', 'a'}")
    _page(tags)


def test_a_big_value_is_named_with_its_size_not_loaded(task: str) -> None:
    view = read_artifact(task, "blob", load_limit=1024 * 1024)
    assert view["kind"] == "big" and view["storedBytes"] > 1024
    assert "too big to load here" in view["summary"] and "data" not in view
    assert "too big to load here" in _page(view)
    loaded = read_artifact(task, "blob")  # under the default limit: bytes, as a bounded repr
    assert loaded["kind"] == "repr" and len(loaded["text"]) <= 64_000


def test_an_unknown_task_or_name_is_one_clear_line(task: str) -> None:
    with pytest.raises(DevdError, match=r"has no artifact .nope.; it has: .*frame"):
        read_artifact(task, "nope")
    flow, run, _, _ = task.split("/")
    with pytest.raises(DevdError, match="no task"):
        read_artifact(f"{flow}/{run}/start/999999", "frame")
    with pytest.raises(DevdError, match="not a task pathspec"):
        read_artifact(f"{flow}/{run}", "frame")


def test_the_page_without_a_webview_has_no_nonce(task: str) -> None:
    html = render_value_page(read_artifact(task, "config"))
    assert "'unsafe-inline'" in html and "nonce" not in html

