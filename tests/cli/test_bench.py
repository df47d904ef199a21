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


def test_bench_name_is_a_schema_key(capsys):
    """`cva-rec bench NAME`: NAME is checked by the config schema (bench.name), which lists every benchmark."""
    from cva_rec.cli.bench import BENCHMARKS
    from cva_rec.cli.main import main
    from cva_rec.config.jobs import BENCH

    assert sorted(BENCHMARKS) == sorted(BENCH["name"].choices)
    assert main(["bench", "fidelty"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cva-rec bench: error: bench.name must be one of codes, compare, encoders,") and "\n" not in err


def test_bench_gpu_dry_run_lists_the_three_cuda_benchmarks(capsys, tmp_path):
    from cva_rec.benchmarks.bench_gpu import main

    assert main(["--dry-run", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["encoders", "eval", "fidelity"]
    assert all("cuda" in line or "gpu" in line for line in lines)
    assert all(str(tmp_path) in line for line in lines)


def test_bench_gpu_without_cuda_is_one_line(monkeypatch, tmp_path):
    import pytest
    import torch

    from cva_rec.benchmarks.bench_gpu import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device"):
        main(["--out", str(tmp_path)])
