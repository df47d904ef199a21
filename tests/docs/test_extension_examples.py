"""The extension-point pages' examples, extracted from the pages and run as a user would.

Each page holds a ```python block ``# my_<thing>.py`` (the extension, registered from user code) and a
``# check_<thing>.py`` that uses it (a short training run on ml-100k, a warm-up chain, or an extraction
of two generated videos through the CLI). The check runs in a fresh interpreter in a temporary folder;
its last line is what the page promises. If a page's code stops working, its test fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.encoders.test_docs_example import python_blocks

REPO = Path(__file__).resolve().parents[2]


def run_page(page: str, tmp_path: Path) -> str:
    blocks = python_blocks((REPO / "docs" / page).read_text(encoding="utf-8"))
    checks = [name for name in blocks if name.startswith("check_")]
    assert len(blocks) == 2 and len(checks) == 1, sorted(blocks)
    for name, code in blocks.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    proc = subprocess.run([sys.executable, checks[0], str(tmp_path / "out")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("page, expected", [
    ("extend_backbone.md", {"backbone": "MeanGRU4Rec", "n_users": 943}),
    ("extend_loss.md", {"loss": "smoothed_softmax", "n_users": 943}),
    ("extend_warmup_stage.md", {"stage": "id_slow", "fine_tune_lr": 0.0001}),
])
def test_training_extension_examples(page, expected, tmp_path):
    result = json.loads(run_page(page, tmp_path))
    assert {k: result[k] for k in expected} == expected
    assert 0.0 <= result["hr@10"] <= 1.0


@pytest.mark.parametrize("page, expected", [
    ("extend_frame_encoder.md", "store: (2, 3, 12) color_grid"),
    ("extend_video_embedder.md", "store: (2, 1, 6) clip_motion"),
])
def test_extraction_extension_examples(page, expected, tmp_path):
    assert run_page(page, tmp_path) == expected
    assert f"prints `{expected}" in (REPO / "docs" / page).read_text()  # the page promises what the code prints


def test_swap_the_encoder_recipe_loads(tmp_path):
    """The YAML on the "swap the item encoder" page is a valid recipe that changes only the item side."""
    import re

    import yaml

    from cva_rec.config.schema import load_config

    page = (REPO / "docs" / "add_your_encoder.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(# my_recipe.yaml.*?)```", page, flags=re.S).group(1)
    recipe = yaml.safe_load(block)
    recipe["base"] = str(REPO / recipe["base"])  # the page's file sits in the repository root
    (tmp_path / "my_recipe.yaml").write_text(yaml.safe_dump(recipe))
    swapped, plain = load_config(tmp_path / "my_recipe.yaml"), load_config(REPO / "recipes" / "ml100k" / "sasrec_id.yaml")
    assert swapped["item_encoder"]["name"] == "cva" and swapped["item_encoder"]["depth"] == 4
    assert swapped["model"] == plain["model"] and swapped["loss"] == plain["loss"] and swapped["eval"] == plain["eval"]
