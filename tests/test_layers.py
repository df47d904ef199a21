"""Layers point one way: which package may import which (read from the source), and what importing costs."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# package -> packages it must not import (at module level or inside functions)
FORBIDDEN = {
    "cva_rec/encoders": ("cva_rec.training", "cva_rec.backbones", "cva_rec.warmup", "cva_rec.report", "data_prep"),
    "cva_rec/report": ("cva_rec.warmup", "cva_rec.training", "cva_rec.backbones", "data_prep"),
    "cva_rec/warmup": ("cva_rec.report", "data_prep"),
    "cva_rec/backbones": ("cva_rec.training", "cva_rec.warmup", "cva_rec.report", "data_prep"),
    "cva_rec": ("data_prep",),
}


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_layers_point_one_way(package):
    bad = [f"{py.relative_to(REPO)} imports {mod}" for py in sorted((REPO / package).rglob("*.py"))
           for mod in imported_modules(py) if any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN[package])]
    assert not bad, "\n".join(bad)


def test_data_prep_imports_neither_recbole_nor_its_shims():
    """The offline pipeline never uses RecBole: importing it must not import RecBole or patch numpy for it."""
    modules = ["data_prep", "data_prep.extract", "data_prep.text_features", "data_prep.cli_convert", "data_prep.cli_text",
               "data_prep.cli_video", "data_prep.converters"]
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "import numpy\n"
            "print(json.dumps({'recbole': sorted(k for k in sys.modules if k.split('.')[0] == 'recbole'),"
            " 'numpy_shimmed': 'float_' in numpy.__dict__}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"recbole": [], "numpy_shimmed": False}
