"""Benchmark scripts refuse counts they cannot run with by a usage line (never timed here)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        # 0 timed calls: a best time of inf, 0 residues/s and Infinity in the JSON
        ("features_speed.py", ["--repeats", "0"], "--repeats: 0 is below the minimum 1"),
        # each of these ended in ZeroDivisionError or a median of nothing
        ("train_throughput.py", ["--iters", "0"], "--iters: 0 is below the minimum 1"),
        ("io_breakdown.py", ["--epochs", "0"], "--epochs: 0 is below the minimum 1"),
        ("io_throughput.py", ["--batch-size", "0"], "--batch-size: 0 is below the minimum 1"),
        ("io_throughput.py", ["--workers", "0", "-1"], "--workers: -1 is below the minimum 0"),
        ("full_scale.py", ["--steps", "0"], "--steps: 0 is below the minimum 1"),
        ("index_build.py", ["--domains", "-3"], "--domains: -3 is below the minimum 1"),
        ("voxelize_speed.py", ["--repeat", "0"], "--repeat: 0 is below the minimum 1"),
        ("voxelize_speed.py", ["--copies", "two"], "--copies: 'two' is not an integer"),
    ],
)
def test_benchmark_refuses_count_below_minimum(tmp_path, script, args, message):
    if script == "features_speed.py":
        args = [str(tmp_path), *args]  # its structures folder
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args, "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"error: argument {message}" in proc.stderr
    assert not (tmp_path / "out").exists()
