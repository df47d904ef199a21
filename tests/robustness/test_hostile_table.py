"""Every row of the hostile-input tables names the tests that cover it, and those tests exist.

The tables (docs/hostile_inputs.md, and the tables of docs/reliability.md whose last column is
``test``) say which hostile input is covered by which test; a row naming a file or a renamed test
would claim coverage nothing checks. Each row must name ``file.py::test_function`` (the file under
``tests/``, by its path or by a name only one test file has) and the function must be defined there.

``python -m pytest $(python -m tests.robustness.test_hostile_table)`` runs exactly the tests the tables name.
"""
from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO

TABLE_PAGES = ("docs/hostile_inputs.md", "docs/reliability.md")


def table_rows(page: Path) -> list:
    """(line number, last cell) of every body row of the tables in ``page`` whose last header is ``test``."""
    rows, header = [], None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not set(line) <= set("|-: ") and header[-1] == "test":
            rows.append((number, cells[-1]))
    return rows


def resolve(name: str, test_files: list) -> list:
    """The test files ``name`` (``tests/a/b.py`` or ``b.py``) can mean."""
    return [p for p in test_files if p.relative_to(REPO).as_posix() == name or p.name == name]


def test_every_row_names_tests_that_exist():
    test_files = sorted((REPO / "tests").rglob("test_*.py"))
    problems, counted = [], 0
    for page in TABLE_PAGES:
        for number, cell in table_rows(REPO / page):
            counted += 1
            where = f"{page}:{number}"
            refs = re.findall(r"`([^`]+)`", cell)
            if not refs or any("::" not in r for r in refs):
                problems.append(f"{where}: name each test as `file.py::test_function`, got {cell!r}")
                continue
            for ref in refs:
                file, function = ref.split("::", 1)
                found = resolve(file, test_files)
                if len(found) != 1:
                    problems.append(f"{where}: {file} matches {len(found)} test files")
                elif not re.search(rf"^(async )?def {re.escape(function)}\(", found[0].read_text(encoding="utf-8"), re.M):
                    problems.append(f"{where}: {function} is not defined in {found[0].relative_to(REPO)}")
    assert counted >= 70, f"only {counted} rows found: did the tables move?"
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_missing_test(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("| input | test |\n|---|---|\n| a | `test_configs.py::test_that_was_renamed` |\n\n| x | y |\n|---|---|\n| b | c |\n")
    assert table_rows(page) == [(3, "`test_configs.py::test_that_was_renamed`")]
    text = resolve("test_configs.py", sorted((REPO / "tests").rglob("test_*.py")))[0].read_text(encoding="utf-8")
    assert not re.search(r"^def test_that_was_renamed\(", text, re.M)


def covering_node_ids() -> list:
    """The pytest node ids (``tests/...py::test_function``) the tables name, each once, in table order."""
    test_files = sorted((REPO / "tests").rglob("test_*.py"))
    ids = []
    for page in TABLE_PAGES:
        for _, cell in table_rows(REPO / page):
            for ref in re.findall(r"`([^`]+::[^`]+)`", cell):
                file, function = ref.split("::", 1)
                node = f"{resolve(file, test_files)[0].relative_to(REPO).as_posix()}::{function}"
                if node not in ids:
                    ids.append(node)
    return ids


if __name__ == "__main__":
    print("\n".join(covering_node_ids()))
