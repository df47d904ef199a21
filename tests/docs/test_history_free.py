"""User-facing text describes the software as it is: no issue numbers, sessions or "this stop".

The project's work history lives in CHANGELOG.md (and dated figures on docs/results.md). The pattern is
the one a reviewer greps for; it covers docs, the README, recipe headers, help strings, error messages and
docstrings (everything under cva_rec/ and data_prep/).
"""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HISTORY = re.compile(r"issue [0-9]|\(issue|session [0-9]|this session|last stop|this stop", re.IGNORECASE)
SUFFIXES = {".md", ".py", ".yaml", ".yml", ".sh", ".json", ".txt", ".cfg"}


def user_facing_files():
    yield REPO / "README.md"
    for top in ("docs", "recipes", "cva_rec", "data_prep"):
        for path in sorted((REPO / top).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
                yield path


def history_mentions(paths) -> list[str]:
    hits = []
    for path in paths:
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if HISTORY.search(line):
                hits.append(f"{shown}:{number}: {line.strip()}")
    return hits


def test_no_work_history_in_user_facing_text():
    hits = history_mentions(user_facing_files())
    assert not hits, "work history belongs in CHANGELOG.md:\n" + "\n".join(hits)


def test_the_pattern_catches_what_it_is_for(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("fine\nmeasured before issue 12\nrows of session 1\nas of this session\n(Issue 3)\n")
    assert len(history_mentions([page])) == 4


MANUAL_DATED = re.compile(r"\b20\d\d-\d\d-\d\d\b|\bcommit [0-9a-f]{7,40}\b|\bat [0-9a-f]{7,40}\b")


def manual_pages():
    """Every page of the manual: docs/*.md but the results page (dated figures belong there)."""
    return [p for p in sorted((REPO / "docs").glob("*.md")) if p.name != "results.md"]


def test_manual_pages_are_short_and_undated():
    long = {p.name: n for p in manual_pages() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 300}
    assert not long, f"manual pages over 300 lines (move measurements to docs/results/): {long}"
    dated = [f"{p.name}:{i}: {line.strip()}" for p in manual_pages()
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if MANUAL_DATED.search(line)]
    assert not dated, "dates and commits belong on docs/results.md and in CHANGELOG.md:\n" + "\n".join(dated)
