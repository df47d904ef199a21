"""A small dataset whose timestamps tie across users: each user's times are 0, 1, 2, ...

This is what ``prep-shortvideo`` writes when a pairs file has no times. RecBole re-sorts its rows
by time alone before splitting, so every user's rows interleave with everyone else's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tied_dataset(root: Path, name: str = "tied", n_users: int = 40, n_items: int = 60, seed: int = 0, repeat_rows: int = 1,
                       min_len: int = 5) -> Path:
    """Write ``root/name/name.inter``; ``repeat_rows=2`` writes every row twice (duplicates); users have
    ``min_len`` .. 12 items."""
    rng = np.random.default_rng(seed)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(min_len, 13)), replace=False)
        for pos, item in enumerate(items):
            lines += [f"u{u}\ti{item}\t{pos}"] * repeat_rows
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    return Path(root)
