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


SOAK = BENCH.with_name("soak_bench.py")


def test_soak_bench_runs_both_daemons_and_reports_their_memory(tmp_path: Path) -> None:
    """bench/soak_bench.py end to end on a few spins (its numbers are the benchmark's)."""
    report = tmp_path / "soak.md"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, str(SOAK), "--spins", "4", "--warmup", "1", "--every", "2",
         "--compare", "--markdown", str(report)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = report.read_text()
    assert "| tuned | 4 |" in text and "| untuned | 4 |" in text, text
    tuned = next(line for line in text.splitlines() if line.startswith("| tuned |"))
    assert "| 2 → 2 |" in tuned or "| 1 → " in tuned, tuned  # arenas capped (glibc)
    assert not list(scratch.glob("devd-soak-*")), "temp project left behind"
