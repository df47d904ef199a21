"""Benchmarks write under ``runs/bench/<name>/`` in the working directory by default: never into the
installed package or the source checkout (``docs/results/scale_bench.json`` ... are refreshed only when named)."""
from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cva_rec.cli.bench import BENCHMARKS

#: arguments a bench requires before its defaults apply
REQUIRED = {"codes": ["--recipe", "r.yaml", "some/codes"], "compare": ["--table", "encoders"]}
#: the arguments that name something the bench writes
OUTPUT_ARGS = ("out", "plot", "json", "runs", "cache")


class Parsed(Exception):
    pass


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_default_outputs_are_under_runs_bench(name, tmp_path, monkeypatch):
    """Each bench's argument parser, run with its defaults: every output it names is in cwd/runs/bench/<name>."""
    module = BENCHMARKS[name]
    mod = importlib.import_module(module if "." in module else f"cva_rec.benchmarks.{module}")
    parse = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        raise Parsed(parse(self, REQUIRED.get(name, []), namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [name])
    with pytest.raises(Parsed) as parsed:
        mod.main() if name == "extract" else mod.main([])
    outputs = {k: v for k, v in vars(parsed.value.args[0]).items() if k in OUTPUT_ARGS and v is not None}
    home = tmp_path / "runs" / "bench" / name
    for key, value in outputs.items():
        path = Path(value if os.path.isabs(str(value)) else tmp_path / str(value))
        assert path == home or home in path.parents, f"bench {name}: --{key} defaults to {value}, outside {home}"


def tree(root: Path) -> dict:
    """path -> sha256 of every file below ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_bench_from_a_read_only_package_writes_only_under_runs_bench(tmp_path):
    """``bench fidelity`` (its protocol part on ml-100k, defaults otherwise) run from a read-only copy of the
    package, as an installed wheel is: the copy is unchanged, and every new file is in cwd/runs/bench/fidelity."""
    import cva_rec

    site = tmp_path / "site"
    shutil.copytree(Path(cva_rec.__file__).parent, site / "cva_rec", ignore=shutil.ignore_patterns("__pycache__"))
    for p in [site, *site.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    work = tmp_path / "work"
    work.mkdir()
    before = tree(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        out = subprocess.run([sys.executable, "-c", "import sys, cva_rec.cli.main as m; print(m.__file__, file=sys.stderr); "
                              "sys.exit(m.main(sys.argv[1:]))", "bench", "fidelity", "--",
                              "--models", "--protocol-batches", "2", "--protocol-datasets", "ml-100k"],
                             cwd=work, env=env, capture_output=True, text=True, timeout=600)
    finally:
        for p in [site, *site.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stderr.splitlines()[0] == str(site / "cva_rec" / "cli" / "main.py")  # the copy ran
    after = tree(tmp_path)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    home = Path("work") / "runs" / "bench" / "fidelity"
    assert changed and all(home in Path(p).parents for p in changed), sorted(changed)[:10]
