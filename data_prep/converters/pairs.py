"""Readers of the MicroLens interaction layouts (also used for Short-Video, App. E), with line-numbered problems.

* ``*_pairs.tsv``: ``user<TAB>item item item ...`` in time order (official readme). The file
  has no timestamps, so they are synthesised from the order: the k-th item of a user gets
  timestamp k (0, 1, 2, ... as float). Only the order within a user is meaningful, which is
  all RecBole's sequential models use (they sort each user's history by timestamp).
* ``*_pairs.csv``: ``userID,videoID,timestamp`` with millisecond timestamps; converted to
  seconds (ms / 1000, RecBole's usual unit). A first line whose timestamp field is not a
  number is taken as a header; known column names (userID/user_id/user, videoID/item_id/
  item/pid, timestamp/time/exposed_time) then pick the columns, in any order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cva_rec.errors import DataError
from data_prep.converters.titles import Problem

USER_NAMES = ("userid", "user_id", "user", "uid")
ITEM_NAMES = ("videoid", "video_id", "item_id", "itemid", "item", "pid")
TIME_NAMES = ("timestamp", "time", "exposed_time", "ts")


@dataclass
class Interactions:
    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    n_lines: int = 0
    n_blank: int = 0
    header: list[str] | None = None
    timestamps_synthesised: bool = False

    def add(self, user: str, item: str, ts: float) -> None:
        self.users.append(user)
        self.items.append(item)
        self.timestamps.append(ts)

    def __len__(self) -> int:
        return len(self.users)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"interaction file {path} does not exist")
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    text = raw.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def read_pairs_tsv(path: str | Path) -> Interactions:
    """``user<TAB>item item ...`` -> interactions with order-synthesised timestamps."""
    out = Interactions(timestamps_synthesised=True)
    lines = _lines(Path(path))
    out.n_lines = len(lines)
    seen_users: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            out.n_blank += 1
            continue
        if "\t" not in line:
            out.problems.append(Problem(number, "no TAB between user and items", line))
            continue
        user, rest = line.split("\t", 1)
        user = user.strip()
        items = rest.split()
        if not user:
            out.problems.append(Problem(number, "empty user id", line))
            continue
        if not items:
            out.problems.append(Problem(number, "user has no items", line))
            continue
        if user in seen_users:  # a second row would restart the synthetic clock: not orderable
            out.problems.append(Problem(number, f"user {user} appears on more than one line (line skipped)", ""))
            continue
        seen_users.add(user)
        for k, item in enumerate(items):
            out.add(user, item, float(k))
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_pairs_csv(path: str | Path, ms_to_seconds: bool = True) -> Interactions:
    """``userID,videoID,timestamp`` (ms) -> interactions (seconds), header optional."""
    out = Interactions()
    lines = _lines(Path(path))
    out.n_lines = len(lines)
    cols = (0, 1, 2)
    first = 0
    while first < len(lines) and not lines[first].strip():
        first += 1
    if first < len(lines):
        fields = [f.strip() for f in lines[first].split(",")]
        if len(fields) >= 3 and not _is_number(fields[2]):
            out.header = fields
            lower = [f.lower() for f in fields]

            def find(names):
                return next((lower.index(n) for n in names if n in lower), None)

            found = (find(USER_NAMES), find(ITEM_NAMES), find(TIME_NAMES))
            cols = tuple(c if c is not None else d for c, d in zip(found, (0, 1, 2)))
            first += 1
    scale = 1000.0 if ms_to_seconds else 1.0
    width = max(cols) + 1
    for number, line in enumerate(lines, start=1):
        if number <= first:
            continue
        if not line.strip():
            out.n_blank += 1
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < width or (len(fields) != len(out.header or [0, 0, 0])):
            out.problems.append(Problem(number, f"expected {len(out.header or [0, 0, 0])} comma-separated fields, got {len(fields)}", line))
            continue
        user, item, ts = fields[cols[0]], fields[cols[1]], fields[cols[2]]
        if not user or not item:
            out.problems.append(Problem(number, "empty user or video id", line))
            continue
        try:
            t = float(ts)
        except ValueError:
            out.problems.append(Problem(number, f"timestamp {ts!r} is not a number", line))
            continue
        if t != t or t in (float("inf"), float("-inf")):
            out.problems.append(Problem(number, f"timestamp {ts!r} is not finite", line))
            continue
        out.add(user, item, t / scale)
    return out


def read_pairs(path: str | Path) -> Interactions:
    """Pick the reader by extension (.tsv or .csv)."""
    p = Path(path)
    if p.suffix.lower() in (".tsv", ".csv"):
        inter = read_pairs_tsv(p) if p.suffix.lower() == ".tsv" else read_pairs_csv(p)
        for problem in inter.problems:
            problem.file = p.name
        return inter
    raise DataError(f"{p}: unknown interaction file type {p.suffix!r}; expected *_pairs.tsv or *_pairs.csv")
