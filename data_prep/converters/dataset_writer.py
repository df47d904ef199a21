"""Shared last step of the converters: order, write the RecBole files and account for every row."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data_prep.converters.atomic_files import write_inter, write_item
from data_prep.converters.pairs import Interactions
from data_prep.converters.titles import Problem


@dataclass
class ConversionReport:
    """Row accounting: every input row is either written or counted under a reason."""

    out_dir: Path
    n_lines: int = 0
    n_rows_read: int = 0
    n_blank: int = 0
    problems: list[Problem] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> interactions dropped
    n_users: int = 0
    n_items: int = 0
    n_interactions: int = 0
    items_without_title: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self, max_problems: int = 20) -> str:
        lines = [f"read {self.n_lines} lines: {self.n_rows_read} interactions, {len(self.problems)} malformed, {self.n_blank} blank"]
        lines += [f"  {p}" for p in self.problems[:max_problems]]
        if len(self.problems) > max_problems:
            lines.append(f"  ... and {len(self.problems) - max_problems} more malformed lines")
        lines += [f"dropped {n} interactions: {why}" for why, n in self.dropped.items()]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"wrote {self.out_dir}: {self.n_users} users, {self.n_items} items, {self.n_interactions} interactions"
                     + (f"; {self.items_without_title} items have no title (empty title written)" if self.items_without_title else ""))
        return "\n".join(lines)


def to_frame(inter: Interactions, report: ConversionReport) -> pd.DataFrame:
    report.n_lines, report.n_blank = inter.n_lines, inter.n_blank
    report.n_rows_read = len(inter)
    report.problems.extend(inter.problems)
    if inter.timestamps_synthesised:
        report.notes.append("timestamps synthesised from the time order of each user's items (0, 1, 2, ...)")
    return pd.DataFrame({"user": inter.users, "item": inter.items, "timestamp": inter.timestamps})


def drop_short_users(df: pd.DataFrame, min_inter: int, report: ConversionReport, label: str) -> pd.DataFrame:
    counts = df.groupby("user")["item"].transform("size")
    keep = counts >= min_inter
    if (~keep).any():
        report.dropped[f"{label} ({df.loc[~keep, 'user'].nunique()} users)"] = int((~keep).sum())
    return df[keep]


def write_dataset(df: pd.DataFrame, titles: dict[str, str] | None, out: Path, name: str,
                  report: ConversionReport) -> Path:
    """Sort by (user, timestamp, input order), write ``<out>/<name>/<name>.inter`` (+ ``.item``)."""
    from cva_rec.errors import DataError

    if df.empty:  # one line: how many rows were read, why they are gone, the first malformed line
        why = [f"{report.n_rows_read} of {report.n_lines} lines read as interactions"]
        why += [f"{n} dropped: {reason}" for reason, n in report.dropped.items()]
        if report.problems:
            why.append(f"{len(report.problems)} malformed, first {report.problems[0]}")
        raise DataError(f"no interactions left for {name}, nothing written ({'; '.join(why)})")
    df = df.reset_index(drop=True)
    df["_order"] = range(len(df))
    df = df.sort_values(["user", "timestamp", "_order"], kind="stable")
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    write_inter(folder / f"{name}.inter", df)
    items = sorted(df["item"].unique())
    if titles is not None:
        report.items_without_title = write_item(folder / f"{name}.item", items, titles)
    report.out_dir = folder
    report.n_users, report.n_items, report.n_interactions = df["user"].nunique(), len(items), len(df)
    return folder


def read_pairs_and_titles(pairs, out, titles_csv=None):
    """The first step every pairs-layout converter shares: (report, interactions frame, titles or None)."""
    from data_prep.converters.pairs import read_pairs
    from data_prep.converters.titles import read_titles

    report = ConversionReport(out_dir=Path(out))
    df = to_frame(read_pairs(pairs), report)
    titles = None
    if titles_csv:
        t = read_titles(titles_csv)
        titles = t.titles
        report.notes.append(t.summary())
        report.problems.extend(t.problems)
    return report, df, titles
