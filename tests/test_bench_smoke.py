"""bench/spin_bench.py --quick runs end to end (no timing assertions: the machine is noisy)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "spin_bench.py"


def test_quick_bench_runs_and_prints_the_three_columns(tmp_path: Path) -> None:
    report = tmp_path / "bench.md"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--markdown", str(report)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for column in ("metaflow spin", "devd cli cold", "devd warm"):
        assert column in proc.stdout, proc.stdout
    text = report.read_text()
    assert "| 20 MB |" in text and "devd warm Session" in text, text
    assert not list(scratch.glob("devd-bench-*")), "temp project left behind"
