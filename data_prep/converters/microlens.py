"""MicroLens (``*_pairs.tsv`` or ``*_pairs.csv`` + titles CSV) -> RecBole atomic files.

Keeps users with at least ``min_user_inter`` (5) interactions, as the MicroLens benchmark
does; items are not filtered. ``.item`` holds the titles (sanitised: no tabs/newlines).
"""
from __future__ import annotations

from pathlib import Path

from data_prep.converters.dataset_writer import ConversionReport, drop_short_users, to_frame, write_dataset
from data_prep.converters.pairs import read_pairs
from data_prep.converters.titles import read_titles


def convert_microlens(pairs: str | Path, out: str | Path, *, titles_csv: str | Path | None = None,
                      name: str = "microlens", min_user_inter: int = 5) -> ConversionReport:
    """Convert one MicroLens interaction file; returns the report (``.summary()`` to print)."""
    report = ConversionReport(out_dir=Path(out))
    df = to_frame(read_pairs(pairs), report)
    titles = None
    if titles_csv:
        t = read_titles(titles_csv)
        titles = t.titles
        report.notes.append(t.summary())
        report.problems.extend(t.problems)
    df = drop_short_users(df, min_user_inter, report, f"users with < {min_user_inter} interactions")
    write_dataset(df, titles, Path(out), name, report)
    return report
