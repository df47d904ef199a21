"""Each user's sequence read straight from the .inter file, in exact time order.

cva_rec orders each user's interactions by their exact time (float64, as written in the file),
ties in file order. RecBole 1.2.1 alone would sort on the float32 of the min-max normalised time
(``normalize_all``), where interactions about 1 s apart on ml-100k (or all of them, beside one
outlier time) tie and keep their file order. This reader uses pandas and numpy only (one stable sort on the float64 time), so it
is an independent check of the histories and popularity the library derives from RecBole's split
rows (``cva_rec.data.histories``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd


def read_inter(path: str | Path, user_field: str = "user_id", item_field: str = "item_id", time_field: str = "timestamp") -> pd.DataFrame:
    """The .inter rows in file order, columns user / item (strings, as RecBole's tokens) and time (float64)."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return pd.DataFrame({"user": df[user_field], "item": df[item_field], "time": df[time_field].astype(np.float64)})


def drop_exact_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """Keep the first of rows with the same user, item and time (``dataset.duplicates: drop``)."""
    return df.drop_duplicates(subset=["user", "item", "time"], keep="first")


def filter_by_counts(df: pd.DataFrame, min_user: int, min_item: int = 0) -> pd.DataFrame:
    """Drop users / items with too few rows, repeated until stable (RecBole's k-core loop)."""
    while True:
        u = df.groupby("user")["item"].transform("size")
        i = df.groupby("item")["user"].transform("size")
        keep = (u >= min_user) & (i >= min_item)
        if keep.all():
            return df
        df = df[keep]


def user_sequences(df: pd.DataFrame) -> Dict[str, List[str]]:
    """user token -> item tokens, each user's rows stably sorted by their exact time (ties: file order)."""
    order = np.argsort(df["time"].to_numpy(dtype=np.float64), kind="stable")
    ordered = df.iloc[order]
    return {u: g["item"].tolist() for u, g in ordered.groupby("user", sort=False)}


def truncate(seqs: Dict[str, List[str]], n: int) -> Dict[str, List[str]]:
    """Each user's most recent ``n`` items (``dataset.truncate_before_split``)."""
    return {u: items[-n:] for u, items in seqs.items()}


def training_rows(items: List[str]) -> List[str]:
    """The items a user's training rows cover, by RecBole 1.2.1's leave-two-out rule: a user with n
    items has n - 1 rows (targets at positions 1 .. n-1); the split holds out the last
    min(2, (n - 1) - 1) rows, so a 3-item user keeps one training row and has no validation row."""
    n_rows = len(items) - 1
    held_out = min(2, n_rows - 1) if n_rows > 0 else 0
    return items[: len(items) - held_out]


def training_targets(seqs: Dict[str, List[str]]) -> Dict[str, int]:
    """item token -> how often it is a training target (every training item but a user's first)."""
    counts: Dict[str, int] = {}
    for items in seqs.values():
        for item in training_rows(items)[1:]:
            counts[item] = counts.get(item, 0) + 1
    return counts


def training_items(seqs: Dict[str, List[str]]) -> set:
    """Items that occur in some user's training part, as input or target."""
    return {item for items in seqs.values() for item in training_rows(items)}
