"""MicroLens titles CSV reader and RecBole-safe text.

Format (official readme): ``videoID,title`` per line, no header, NO quoting: the id ends at
the FIRST comma and everything after it (commas and quotes included) is the title.
Handled: a UTF-8 byte-order mark, CRLF line ends, the space after the comma, empty titles
(kept as ""), blank lines (skipped, counted), lines without a comma or with an empty id
(reported with line numbers), duplicate ids (first kept, reported), undecodable bytes
(replaced, reported). Lines are split on ``\\n`` only: ``str.splitlines`` would also split on
characters like U+2028 that can occur inside a title.

RecBole atomic files are tab-separated with one record per line, so :func:`sanitize_text`
turns tabs, newlines and other control characters into spaces.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_SPACES = re.compile(r"\s+")


@dataclass
class Problem:
    """A malformed or dropped row, with its 1-based line number."""

    line: int
    reason: str
    text: str = ""
    file: str = ""  # which input file (converters read several)

    def __str__(self) -> str:
        snippet = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        where = f"{self.file}:" if self.file else ""
        return f"{where}line {self.line}: {self.reason}" + (f": {snippet!r}" if snippet else "")


@dataclass
class TitlesResult:
    titles: dict[str, str]  # item id -> title (raw, not sanitised)
    problems: list[Problem] = field(default_factory=list)
    n_lines: int = 0
    n_blank: int = 0
    n_empty_titles: int = 0
    n_duplicates: int = 0

    def summary(self) -> str:
        return (f"titles: {len(self.titles)} items from {self.n_lines} lines; {self.n_empty_titles} empty titles, "
                f"{self.n_blank} blank lines, {self.n_duplicates} duplicate ids, "
                f"{len(self.problems) - self.n_duplicates} malformed lines")


def sanitize_text(text: str) -> str:
    """One-line, tab-free text for a RecBole atomic file (control chars -> space, spaces collapsed)."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()


def read_titles(path: str | Path) -> TitlesResult:
    """Parse a MicroLens ``videoID,title`` file (see module doc)."""
    from cva_rec.errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"titles file {p} does not exist")
    raw = p.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # trailing newline
    result = TitlesResult(titles={}, n_lines=len(lines))
    for number, line_bytes in enumerate(lines, start=1):
        line_bytes = line_bytes.rstrip(b"\r")
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            line = line_bytes.decode("utf-8", errors="replace")
            result.problems.append(Problem(number, "invalid UTF-8 (bytes replaced)", line))
        if not line.strip():
            result.n_blank += 1
            continue
        if "," not in line:
            result.problems.append(Problem(number, "no comma (expected videoID,title)", line))
            continue
        item_id, title = line.split(",", 1)
        item_id, title = item_id.strip(), title.strip()
        if not item_id:
            result.problems.append(Problem(number, "empty video id", line))
            continue
        if item_id in result.titles:
            result.n_duplicates += 1
            result.problems.append(Problem(number, f"duplicate video id {item_id} (first occurrence kept)"))
            continue
        if not title:
            result.n_empty_titles += 1
        result.titles[item_id] = title
    for problem in result.problems:
        problem.file = p.name
    return result
