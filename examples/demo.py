"""`make demo`: the product-categories example (examples/product_categories/), run for real
once, then its train step spun cold, warm, and with injected artifacts; its card previewed.

Everything happens in ./out/demo so the repository stays clean.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "product_categories"
OUT = ROOT / "out" / "demo"
FLOW = "flow.py"
ROWS = "1000"  # a small catalogue: the demo's run takes seconds


def devd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=OUT, text=True)


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for source in EXAMPLE.glob("*.py"):
        shutil.copy(source, OUT / source.name)
    os.chdir(OUT)
    step(f"devd run {FLOW} --rows {ROWS}  (a real Metaflow run: a Parquet dataset, one "
         f"classifier per category in a foreach, a join; in {OUT})")
    if devd("run", FLOW, "--rows", ROWS).returncode != 0:
        return 1

    step(f"devd spin {FLOW} train  (cold: a fresh process loads the parents)")
    started = time.perf_counter()
    if devd("spin", FLOW, "train").returncode != 0:
        return 1
    cold = time.perf_counter() - started

    import devd as api

    step("devd.Session: the same spin, parents kept warm in memory")
    with api.Session(FLOW) as session:
        session.spin("train")  # loads the parents once
        warm = []
        for _ in range(5):
            time.sleep(0.5)  # as between edits: the next spin's child gets ready meanwhile
            result = session.spin("train")
            warm.append(result.duration_s)
        print(f"{result.artifacts['category']}: {result.artifacts['model']} accuracy "
              f"{result.artifacts['accuracy']:.3f}  next={result.next_steps}")

        step("the post's artifacts.py: ARTIFACTS = {'model': 'kmeans', 'k': 15}")
        kmeans = session.spin("train", artifacts_module="artifacts.py")
        if not kmeans.ok:
            print(kmeans.error and kmeans.error.traceback)
            return 1
        print(f"{kmeans.artifacts['category']}: {kmeans.artifacts['model']} "
              f"(k={kmeans.artifacts['k']}) accuracy {kmeans.artifacts['accuracy']:.3f} in "
              f"{kmeans.duration_s * 1000:.0f} ms (sklearn's KMeans fit included)")
    print(f"\ncold CLI spin (whole process, imports scikit-learn): {cold * 1000:.0f} ms")
    print(f"warm spin (median of 5, half a second apart): "
          f"{statistics.median(warm) * 1000:.0f} ms (training and the card included)")

    step(f"devd card {FLOW} train  (its card and results, one offline page)")
    preview = OUT / "preview.html"
    if devd("card", FLOW, "train", "-o", str(preview)).returncode != 0:
        return 1
    print(f"open it in a browser: {preview.as_uri()}")
    print(f"next: examples/product_categories/README.md, in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
