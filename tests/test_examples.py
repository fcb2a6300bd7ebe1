"""The examples under examples/, each run for real (small sizes) and its key steps spun.

Each example is copied to its own project directory and run with Metaflow once (the three
runs at the same time); then its key steps are spun through devd as its README does, and
the cards they render are checked in a real headless Chromium, offline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cards import Watched, browser  # noqa: F401  (the Chromium fixture)

import devd

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# Small sizes: the examples' defaults are for people and benchmarks.
RUN_ARGS = {"product_categories": ["--rows", "600"], "configurable": [],
            "match_cutting": ["--frames", "480"]}


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each example in a project directory of its own, run once for real."""
    root = tmp_path_factory.mktemp("examples")
    procs = {}
    for name, args in RUN_ARGS.items():
        project = root / name
        shutil.copytree(EXAMPLES / name, project,
                        ignore=shutil.ignore_patterns("build", "__pycache__", ".metaflow*"))
        (project / ".metaflow").mkdir()  # Metaflow looks for it upwards: keep it here
        procs[name] = subprocess.Popen(
            [sys.executable, "flow.py", "run", *args], cwd=project, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name} run failed:\n{out[-4000:]}"
    return {name: root / name for name in RUN_ARGS}


@pytest.fixture
def chdir_to(projects: dict[str, Path]) -> Iterator[Any]:
    previous = os.getcwd()

    def go(name: str) -> Path:
        os.chdir(projects[name])
        return projects[name]

    yield go
    os.chdir(previous)


def devd_cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=project,
                          capture_output=True, text=True, timeout=300)


def open_card(browser: Any, tmp_path: Path, name: str, html: str) -> Watched:  # noqa: F811
    path = tmp_path / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    watched = Watched(browser)
    watched.page.goto(path.as_uri())
    return watched


def assert_clean(watched: Watched, tmp_path: Path, name: str) -> None:
    """No script error and no request leaving the machine; a screenshot for a human look."""
    watched.shot(tmp_path, name)
    assert watched.errors == [] and watched.remote_requests() == []
    watched.close()


def test_product_categories(chdir_to: Any, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    project = chdir_to("product_categories")
    with devd.Session("flow.py") as session:
        result = session.spin("train")
        assert result.ok, result.error and result.error.traceback
        art = result.artifacts
        assert art["category"] == "laptops" and art["model"] == "logreg"
        assert art["classes"] == ["gaming", "ultrabook", "workstation"]
        assert 0.5 < art["accuracy"] <= 1.0
        assert art["confusion"].shape == (3, 3)
        assert art["confusion"].sum() == sum(m["support"] for m in art["metrics"].values())
        assert result.next_steps == ["join"]

        card = open_card(browser, tmp_path, "product-train", result.cards[0])
        page = card.page
        assert page.locator("h1", has_text="laptops: logreg").is_visible()
        cells = [c.strip() for c in page.locator("td").all_inner_texts()]
        for sub in art["classes"]:
            assert sub in cells
        assert f"{art['metrics']['gaming']['f1']:.3f}" in cells
        image = page.locator("img[src^='data:image/png']").first
        assert image.evaluate("img => img.complete && img.naturalWidth") == 3 * 48
        chart = page.locator(".vega-embed svg, .vega-embed canvas").first
        chart.wait_for(timeout=15000)  # Vega drew the chart from the card's own script
        assert chart.bounding_box()["width"] > 200
        assert_clean(card, tmp_path, "example-product-train")

        # The post's --artifacts-module: the same step, now clustering with k = 15.
        kmeans = session.spin("train", artifacts_module="artifacts.py")
        assert kmeans.ok, kmeans.error and kmeans.error.traceback
        assert kmeans.artifacts["model"] == "kmeans" and kmeans.artifacts["k"] == 15
        assert len(kmeans.artifacts["classifier"][2]) == 15
        card = open_card(browser, tmp_path, "product-train-kmeans", kmeans.cards[0])
        assert card.page.locator("h1", has_text="laptops: kmeans").is_visible()
        card.close()

        join = session.spin("join")
        assert join.ok, join.error and join.error.traceback
        accuracies = join.artifacts["accuracies"]
        assert set(accuracies) == {"laptops", "monitors", "keyboards", "storage"}
        assert join.artifacts["best"] == max(accuracies, key=accuracies.get)

    # The example's own unit tests of the train step (`pytest test_train.py`), in-process.
    spec = importlib.util.spec_from_file_location("example_test_train", project / "test_train.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()


def test_configurable(chdir_to: Any, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    project = chdir_to("configurable")
    merged = subprocess.run([sys.executable, "merge.py", "EXP_02"], cwd=project,
                            capture_output=True, text=True, timeout=60)
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout.strip() == os.path.join("build", "EXP_02.toml")

    with devd.Session("flow.py") as session:
        plain = session.spin("train")  # the run's config (config.toml)
        assert plain.ok, plain.error and plain.error.traceback
        assert plain.artifacts["cpu"] == 1 and plain.artifacts["epochs"] == 200
        assert plain.artifacts["config"]["model"] == {
            "optimizer": "adam", "learning_rate": 0.5, "epochs": 200}

    # The README's spin with an experiment: decorators and step body see EXP_02.
    proc = devd_cli(project, "spin", "flow.py", "train", "--config", "config",
                    "build/EXP_02.toml", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    summaries = {a["name"]: a["summary"] for a in data["artifacts"]}
    assert summaries["cpu"] == "2" and summaries["epochs"] == "200"
    card = open_card(browser, tmp_path, "configurable-train", data["cards"][0]["html"])
    text = card.page.locator("body").inner_text()
    for expected in ("adam, learning rate 0.1", "30 6 * * *", "2 CPU", "after 200 epochs"):
        assert expected in text, expected
    cells = [c.strip() for c in card.page.locator("td").all_inner_texts()]
    assert cells[:1] == ["x1"] and "3.0" in cells
    assert_clean(card, tmp_path, "example-configurable-train")

    # An experiment run: its merged config reaches start (two features), then a spin.
    assert subprocess.run([sys.executable, "merge.py", "EXP_01"], cwd=project,
                          capture_output=True, timeout=60).returncode == 0
    run = devd_cli(project, "run", "flow.py", "--config", "config", "build/EXP_01.toml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = devd.spin("flow.py", "train")
    assert result.ok, result.error and result.error.traceback
    assert result.artifacts["X"].shape == (400, 2)
    assert result.artifacts["config"]["model"]["optimizer"] == "sgd"
    assert result.artifacts["config"]["schedule"]["cron"] == "0 * * * *"


def test_match_cutting(chdir_to: Any, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    chdir_to("match_cutting")
    with devd.Session("flow.py") as session:
        result = session.spin("score")
        assert result.ok, result.error and result.error.traceback
        art = result.artifacts
        truth = art["truth"]
        assert art["SB"] == truth["SB"] and len(art["SB"]) > 10
        removed = set(art["SB"]) - set(art["SB_deduped"])
        assert removed == {d for d, _ in truth["duplicates"]} and removed
        layout = truth["layout_of"]
        kept = art["shot_ids"]
        same_layout = {(a, b) for i, a in enumerate(kept) for b in kept[i + 1:]
                       if layout[a] == layout[b]}
        assert same_layout, "the made-up video has match cuts"
        n = len(kept)
        assert art["scores"].shape == (n, n) and art["pair_count"] == n * (n - 1) // 2
        top = [(p["shot1"], p["shot2"]) for p in art["top_pairs"]]
        assert len(top) == 6
        best = top[: len(same_layout)]
        assert set(best) == same_layout  # the planted matches score highest
        assert all(p["score"] > 0.9 for p in art["top_pairs"][: len(same_layout)])

        card = open_card(browser, tmp_path, "match-score", result.cards[0])
        page = card.page
        assert page.locator("h1", has_text="Top 6 match cuts").is_visible()
        images = page.locator("img[src^='data:image/png']")
        assert images.count() == 6
        widths = images.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
        assert widths == [2 * 128 + 6] * 6
        first = top[0]
        assert f"shots {first[0]} and {first[1]}" in page.locator("body").inner_text()
        assert_clean(card, tmp_path, "example-match-score")

        # Spun again on the warm parents with another K.
        three = session.spin("score", artifacts={"top_k": 3})
        assert three.ok, three.error and three.error.traceback
        assert [(p["shot1"], p["shot2"]) for p in three.artifacts["top_pairs"]] == top[:3]
        card = open_card(browser, tmp_path, "match-score-3", three.cards[0])
        assert card.page.locator("img[src^='data:image/png']").count() == 3
        card.close()


def test_match_bench_quick_runs(tmp_path: Path) -> None:
    """bench/match_bench.py --quick end to end (no timing assertions: the machine is noisy)."""
    report = tmp_path / "match.md"
    # A short TMPDIR: the daemon's socket path must fit AF_UNIX's ~108 bytes.
    scratch = Path(tempfile.mkdtemp(prefix="devd-mb-", dir="/tmp"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "match_bench.py"), "--quick",
         "--markdown", str(report)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TMPDIR": str(scratch)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    row = next(line for line in report.read_text().splitlines() if line.startswith("| `score`"))
    assert row.count(" ms") == 4 and "x)" in row, row
    leftover = list(scratch.glob("devd-match-bench-*"))
    shutil.rmtree(scratch, ignore_errors=True)
    assert not leftover, "temp project left behind"
