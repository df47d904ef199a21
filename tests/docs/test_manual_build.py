"""The manual and its API reference build with mkdocs in strict mode: a broken link, a missing page or a
reference to a symbol that does not exist fails CI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_manual_builds_strictly(tmp_path):
    proc = mkdocs_build(REPO / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "encoders" / "index.html").is_file()
    assert "register_encoder" in (tmp_path / "site" / "api" / "encoders" / "index.html").read_text()


def test_a_broken_link_fails_the_build(tmp_path):
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Page\n\nSee [the missing page](missing.md).\n")
    config.update(docs_dir=str(docs), nav=[{"Home": "index.md"}], plugins=["search"])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    proc = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0 and "missing.md" in proc.stderr
