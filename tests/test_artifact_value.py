"""An artifact's value for the runs explorer's pane (issue 20 item 2): read from a real run
through Metaflow's Client and rendered by the daemon, each kind its own way, every part
bounded; the page has no script and escapes whatever the value holds."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

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
        assert view["summary"].endswith(f"image {size[0]}x{size[1]}"), view["summary"]
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



def test_through_the_daemon_a_value_a_tasks_card_and_a_pinned_run(project: Path,
                                                                   tmp_path: Path) -> None:
    """devd/artifactValue with a pane's webview answers the page (and the view without the
    image); devd/taskCard a recorded task's page with its stored cards; devd/spin with
    runId takes the parents from that run, not the newest."""
    import subprocess
    import sys

    from devd.cli.client import file_uri
    from tests.wirehelp import cli, make_project

    root = make_project(project, ("linear_flow.py", "card_flow.py"), "dvav",
                        run=("linear_flow.py", "card_flow.py"))
    (root / "values_flow.py").write_text(VALUES_FLOW)
    older = run_flow(root, "linear_flow.py")
    newest = run_flow(root, "linear_flow.py")
    values_run = run_flow(root, "values_flow.py")
    env = {**os.environ, "DEVD_RUNTIME_DIR": str(tmp_path / "rt"), "DEVD_IDLE_TIMEOUT": "120"}
    assert cli(root, "daemon", "start", env=env).returncode == 0
    try:
        script = (
            "import json, sys\n"
            "from devd.cli.daemons import daemon_for\n"
            "c = daemon_for(sys.argv[1])\n"
            "values, cards, linear, run, older = sys.argv[2:7]\n"
            "pane = {'nonce': 'N' * 24, 'cspSource': 'https://*.vscode-cdn.net'}\n"
            "task = 'ValuesFlow/' + run + '/start/1'\n"
            "with c:\n"
            "    out = [c.request('devd/artifactValue', {'uri': values, 'pathspec': task,\n"
            "                                             'name': 'png', 'webview': pane}),\n"
            "           c.request('devd/artifactValue', {'uri': values, 'pathspec': task,\n"
            "                                             'name': 'grid'}),\n"
            "           c.request('devd/artifactValue', {'uri': values, 'pathspec': task,\n"
            "                                             'name': 'nope'})]\n"
            "    graph = c.request('devd/graph', {'uri': cards})\n"
            "    steps = c.request('devd/tasks', {'uri': cards, 'runId': graph['run']['runId'],\n"
            "                                     'step': 'report'})\n"
            "    out.append(c.request('devd/taskCard', {'uri': cards, 'webview': pane,\n"
            "               'pathspec': steps['tasks'][0]['pathspec']}))\n"
            "    out.append(c.request('devd/spin', {'uri': linear, 'step': 'double',\n"
            "                                       'runId': older, 'webview': None}))\n"
            "    out.append(c.request('devd/spin', {'uri': linear, 'line': 13,\n"
            "                                       'runId': older, 'webview': None}))\n"
            "    out.append(c.request('devd/spin', {'uri': linear, 'step': 'double',\n"
            "                                       'webview': None}))\n"
            "    out.append(c.request('devd/spin', {'uri': linear, 'step': 'double',\n"
            "                                       'runId': 'a/b', 'webview': None}))\n"
            "print(json.dumps(out))\n")
        out = subprocess.run(
            [sys.executable, "-c", script, str(root), file_uri(str(root / "values_flow.py")),
             file_uri(str(root / "card_flow.py")), file_uri(str(root / "linear_flow.py")),
             values_run, older], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        png, grid, nope, card, pinned, by_line, plain, bad = json.loads(out.stdout)
        assert png["ok"] and png["value"]["kind"] == "image" and "data" not in png["value"]
        assert "data:image/png;base64," in png["html"] and "nonce-" + "N" * 24 in png["html"]
        assert grid["ok"] and "html" not in grid and grid["value"]["stats"]["nan"] == 1
        assert grid["value"]["shape"] == [2000, 50]
        assert not nope["ok"] and "has no artifact 'nope'" in nope["error"]["message"]
        assert card["ok"] and card["step"] == "report"
        assert 'data-card-id="report"' in card["preview"]  # the card Metaflow stored
        assert 'nonce="' + "N" * 24 + '"' in card["preview"]
        assert pinned["ok"] and pinned["originRunId"] == older != newest
        assert by_line["ok"] and by_line["step"] == "double" and by_line["originRunId"] == older
        assert plain["ok"] and plain["originRunId"] == newest
        assert not bad["ok"] and "runId must be a run's id" in bad["error"]["message"]
    finally:
        cli(root, "daemon", "stop", env=env)


def test_a_pil_images_summary_says_what_it_is() -> None:
    """The runs tree's artifact rows and the spin page's table name an image by its mode and
    size, not by a repr with its address."""
    from PIL import Image

    from devd.common.summary import describe

    row = describe("picture", Image.new("RGB", (320, 200)))
    assert row.summary == "RGB image 320x200", row
