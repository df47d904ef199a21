"""docs/add_your_encoder.md's example, extracted from the page and run on real ml-100k.

The page's ```python blocks start with a ``# <file name>.py`` line; each is written to that file
in a temporary folder and the training script is run there in a fresh interpreter (as a user
would), for a few batches. If the page's code stops working, this test fails.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "add_your_encoder.md"


def python_blocks(markdown: str) -> dict[str, str]:
    """``{file name: code}`` for every ```python block whose first line is ``# name.py``."""
    blocks = {}
    for code in re.findall(r"```python\n(.*?)```", markdown, flags=re.S):
        first = code.splitlines()[0].strip()
        m = re.fullmatch(r"#\s*([\w.]+\.py)", first)
        if m:
            blocks[m.group(1)] = code
    return blocks


def test_doc_has_the_two_files():
    assert set(python_blocks(DOC.read_text(encoding="utf-8"))) == {"my_encoders.py", "train_max_pool.py"}


def test_docs_encoder_example_trains_on_ml100k(tmp_path):
    for name, code in python_blocks(DOC.read_text(encoding="utf-8")).items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "train_max_pool.py", "--out", str(tmp_path / "runs"), "--steps", "3"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "store: (1682, 6, 19)" in proc.stdout  # the shape the page promises
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n_users"] == 943
    metrics = json.loads((tmp_path / "runs" / "sasrec-max_pool" / "metrics.json").read_text())
    assert metrics["item_encoder"] == "max_pool" and metrics["test"]["hr@10"] == result["hr@10"]
    assert metrics["encoder_parameters"] == 19 * 64 + 64 + 64 * 64 + 64  # the page's MLP, hidden=64, SASRec width 64


def test_docs_encoder_rejects_a_misspelt_option(tmp_path):
    code = python_blocks(DOC.read_text(encoding="utf-8"))["my_encoders.py"]
    (tmp_path / "my_encoders.py").write_text(code, encoding="utf-8")
    check = ("import my_encoders\nfrom cva_rec.config.schema import load_config\n"
             "load_config(None, ['item_encoder.name=max_pool', 'item_encoder.hiden=8'])\n")
    proc = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "has no option 'hiden' (did you mean 'hidden'?)" in proc.stderr
