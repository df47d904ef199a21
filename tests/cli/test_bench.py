"""``cva-rec bench``: every benchmark is a module of the installed package, runnable from any folder."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

from cva_rec.cli.bench import BENCHMARKS


def test_every_benchmark_ships_inside_the_package():
    for name, module in BENCHMARKS.items():
        spec = importlib.util.find_spec(module if "." in module else f"cva_rec.benchmarks.{module}")
        assert spec is not None and spec.origin, name


def test_bench_runs_outside_the_source_checkout(tmp_path):
    """No path into a checkout's benchmarks/ folder: the command works from any working directory."""
    out = subprocess.run([sys.executable, "-m", "cva_rec.cli.main", "bench", "tokenize", "--", "--help"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()
