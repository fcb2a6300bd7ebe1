"""`make demo`: run an example flow for real, spin one step cold and warm, write its preview.

Everything happens in ./out/demo so the repository stays clean.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "demo"
FLOW = "hello_flow.py"


def devd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=OUT, text=True)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "examples" / FLOW, OUT / FLOW)
    os.chdir(OUT)
    print(f"== devd run {FLOW}  (a real Metaflow run, in {OUT})", flush=True)
    if devd("run", FLOW).returncode != 0:
        return 1

    print("\n== devd spin hello_flow.py train  (cold: a fresh process loads the parents)",
          flush=True)
    started = time.perf_counter()
    if devd("spin", FLOW, "train").returncode != 0:
        return 1
    cold = time.perf_counter() - started

    import devd as api

    print("\n== devd.Session: the same spin, parents kept warm in memory", flush=True)
    with api.Session(FLOW) as session:
        session.spin("train")  # loads the parents once
        warm = []
        for _ in range(5):
            time.sleep(0.5)  # as between edits: the next spin's child gets ready meanwhile
            result = session.spin("train")
            warm.append(result.duration_s)
        warm.sort()
        print(f"score={result.artifacts['score']}  next={result.next_steps}")
    print(f"\ncold CLI spin (whole process): {cold * 1000:.0f} ms")
    print(f"warm spin (median of 5, half a second apart): {warm[2] * 1000:.1f} ms "
          "(the step renders a card)")

    print("\n== devd card hello_flow.py train  (its card and results, one offline page)",
          flush=True)
    preview = OUT / "preview.html"
    if devd("card", FLOW, "train", "-o", str(preview)).returncode != 0:
        return 1
    print(f"open it in a browser: {preview.as_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
