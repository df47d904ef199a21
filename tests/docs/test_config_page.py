"""docs/config.md is generated from the schema: the file equals what the generator prints now."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_config_page_is_the_generated_one():
    out = subprocess.run([sys.executable, "-m", "cva_rec.config.schema"], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    page = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert page == out, "docs/config.md is out of date: python -m cva_rec.config.schema > docs/config.md"
