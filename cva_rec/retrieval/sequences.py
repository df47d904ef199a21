"""Histories as the retriever reads them: left-aligned windows of the most recent items.

The retriever reads a user's items from the same CSR histories the evaluation masks with
(``UserHistory``: items before the validation target = the training part, items before the
test target = what a test user has seen), so recall sees exactly what full ranking sees.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch


def last_items(indptr: np.ndarray, items: np.ndarray, users: np.ndarray, max_len: int,
               end: Optional[np.ndarray] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The last ``max_len`` items before position ``end`` (default: the end) of each user's CSR
    history -> (item_seq [U, max_len] left-aligned, 0-padded; lengths [U])."""
    users = np.asarray(users, dtype=np.int64)
    starts = indptr[users]
    stops = indptr[users + 1] if end is None else starts + np.asarray(end, dtype=np.int64)
    lengths = np.minimum(stops - starts, max_len)
    seq = np.zeros((len(users), max_len), dtype=np.int64)
    cols = np.arange(max_len)[None, :]
    take = cols < lengths[:, None]
    src = (stops - lengths)[:, None] + cols
    seq[take] = items[src[take]]
    return torch.from_numpy(seq), torch.from_numpy(lengths.astype(np.int64))


def training_windows(indptr: np.ndarray, items: np.ndarray, max_len: int, extra_per_user: int,
                     rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's training windows: each user's most recent ``max_len + 1`` items, plus
    ``extra_per_user`` windows ending at random earlier positions. Inputs are a window's first
    items, targets the next ones: every position is a training target (causal decoder).
    -> (windows [W, max_len + 1] left-aligned, lengths [W]); users with < 2 items are skipped."""
    counts = np.diff(indptr)
    users = np.flatnonzero(counts >= 2)
    ends = [counts[users]]
    for _ in range(extra_per_user):
        ends.append(rng.integers(2, counts[users] + 1))
    all_users = np.tile(users, len(ends))
    return last_items(indptr, items, all_users, max_len + 1, np.concatenate(ends))
