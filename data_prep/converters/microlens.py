"""MicroLens (``*_pairs.tsv`` or ``*_pairs.csv`` + titles CSV) -> RecBole atomic files.

Keeps users with at least ``min_user_inter`` (5) interactions, as the MicroLens benchmark
does; items are not filtered. ``.item`` holds the titles (sanitised: no tabs/newlines).
"""
from __future__ import annotations

from pathlib import Path

from data_prep.converters.dataset_writer import ConversionReport, drop_short_users, write_dataset
from data_prep.converters.dataset_writer import read_pairs_and_titles


def convert_microlens(pairs: str | Path, out: str | Path, *, titles_csv: str | Path | None = None,
                      name: str = "microlens", min_user_inter: int = 5) -> ConversionReport:
    """Convert one MicroLens interaction file; returns the report (``.summary()`` to print)."""
    report, df, titles = read_pairs_and_titles(pairs, out, titles_csv)
    df = drop_short_users(df, min_user_inter, report, f"users with < {min_user_inter} interactions")
    write_dataset(df, titles, Path(out), name, report)
    return report
