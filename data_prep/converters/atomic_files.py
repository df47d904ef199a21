"""Write RecBole atomic files (``<out>/<name>/<name>.inter`` / ``.item``), atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from cva_rec.io import atomic_write
from data_prep.converters.titles import sanitize_text


def _atomic_text(path: Path, lines: Iterable[str]) -> None:
    def write(f) -> None:
        for line in lines:
            f.write(line.encode("utf-8"))
            f.write(b"\n")

    atomic_write(path, write, mode="wb")  # bytes: "\n" line ends on every platform


def write_inter(path: Path, df: pd.DataFrame) -> None:
    """df columns user, item, timestamp -> ``user_id:token item_id:token timestamp:float`` (tab-separated)."""
    rows = (f"{u}\t{i}\t{float(t)!r}" for u, i, t in zip(df["user"], df["item"], df["timestamp"].astype(float)))
    _atomic_text(path, ["user_id:token\titem_id:token\ttimestamp:float", *rows])


def write_item(path: Path, item_ids: Sequence[str], titles: dict[str, str]) -> int:
    """``item_id:token title:token_seq``; items without a title get an empty title. Returns how many lacked one."""
    missing = 0
    lines = ["item_id:token\ttitle:token_seq"]
    for item in item_ids:
        if item not in titles:
            missing += 1
        lines.append(f"{item}\t{sanitize_text(titles.get(item, ''))}")
    _atomic_text(path, lines)
    return missing
