"""One version: setup.cfg, cva_rec.__version__ and CHANGELOG.md's newest entry agree."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

import cva_rec

REPO = Path(__file__).resolve().parents[2]


def newest_changelog_version(text: str) -> str:
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, flags=re.M)
    assert versions, "CHANGELOG.md has no '## [X.Y.Z] - YYYY-MM-DD' entry"
    return versions[0]


def test_setup_cfg_package_and_changelog_agree():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    setup_version = cfg["metadata"]["version"]
    changelog = newest_changelog_version((REPO / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert setup_version == cva_rec.__version__ == changelog


def test_changelog_versions_descend():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    found = [tuple(map(int, v.split("."))) for v in re.findall(r"^## \[(\d+\.\d+\.\d+)\]", text, flags=re.M)]
    assert found == sorted(found, reverse=True) and len(set(found)) == len(found)
