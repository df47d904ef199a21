"""``per_user_test.npz``: every tested user's target and rank, the input of paired intervals over users.

One row per test user, sorted by internal user id:

* ``user`` (int64, internal id) and ``user_token`` (str, the id of the .inter file: what pairs two runs);
* ``target`` (int64, internal item id) and ``rank`` (int64, 0-based rank of the target among its candidates);
* ``n_candidates`` (int64): how many items the target was ranked among (itself included), for the
  expected metrics of a random ranking: ``eval.negatives + 1``, or with full ranking every item but
  padding, less the user's masked history;
* ``cold`` (bool): the target is a held-out item (``dataset.cold_items``; all False without them).

Written atomically by rank 0 before ``metrics.json`` (a finished run has both);
:mod:`cva_rec.report.bootstrap` reads it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from cva_rec.io import atomic_write
from cva_rec.jobs.run_folder import PER_USER_FILE


def candidate_counts(cfg: Mapping[str, Any], n_items: int, history, users: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[users] how many candidates each target was ranked among (itself included)."""
    ev = cfg["eval"]
    if ev["negatives"]:
        return np.full(len(users), int(ev["negatives"]) + 1, dtype=np.int64)
    full = np.full(len(users), n_items - 1, dtype=np.int64)  # every item but padding
    if not ev["mask_history"] or history is None:
        return full
    rows, items = (t.numpy() for t in history.index_pairs(users))
    other = items != targets[rows]  # the target itself is never masked
    # distinct masked items per row (a repeated history item is masked once)
    pairs = np.unique(np.stack([rows[other], items[other]]), axis=1) if other.any() else np.zeros((2, 0), dtype=np.int64)
    return full - np.bincount(pairs[0], minlength=len(users))


def write_per_user(run_dir: Path, cfg: Mapping[str, Any], data, rows, cold_items: Optional[Any] = None) -> Path:
    """Write ``run_dir/per_user_test.npz`` from ``rows`` = (users, targets, ranks) tensors of the test."""
    users, targets, ranks = (np.asarray(t.cpu().numpy(), dtype=np.int64) for t in rows)
    order = np.argsort(users, kind="stable")
    users, targets, ranks = users[order], targets[order], ranks[order]
    tokens = np.asarray(data.dataset.field2id_token[data.dataset.uid_field])[users].astype(str)
    cold = (np.asarray(cold_items.cpu().numpy(), dtype=bool)[targets] if cold_items is not None
            else np.zeros(len(users), dtype=bool))
    arrays = {"user": users, "user_token": tokens, "target": targets, "rank": ranks, "cold": cold,
              "n_candidates": candidate_counts(cfg, int(data.n_items), getattr(data, "test_history", None), users, targets)}
    return atomic_write(Path(run_dir) / PER_USER_FILE, lambda fh: np.savez(fh, **arrays), mode="wb")
