"""A plain reference evaluator for leave-one-out ranking metrics (numpy and Python loops).

Written apart from ``cva_rec.training.evaluation`` to check it. The rule it implements is the one
docs/evaluation.md documents:

* candidates: every item except padding (id 0) and the target, minus the user's masked history
  (full ranking), or the given sampled negatives (sampled ranking);
* rank = (candidates scoring strictly higher than the target)
  + min(floor(u * (ties + 1)), ties), where ties = candidates scoring exactly the target's score
  and u in [0, 1) is a fixed function of (seed, user): :func:`tie_uniform`;
* HR@K = Recall@K = [rank < K], NDCG@K = [rank < K] / log2(rank + 2), MRR@K = [rank < K] / (rank + 1),
  averaged over users.

Non-finite scores are refused (a NaN target would otherwise rank first).
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

_MASK64 = (1 << 64) - 1


def tie_uniform(user: int, seed: int) -> float:
    """splitmix64 of (seed, user) -> a float in [0, 1) (Python integers, written from the algorithm)."""
    x = (int(user) + (int(seed) % 2**32) * 0x100000001B3) & _MASK64
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    x = x ^ (x >> 31)
    return (x >> 11) / float(2**53)


def rank_one(scores: np.ndarray, target: int, u: float, exclude: Iterable[int] = (), candidates: Optional[Sequence[int]] = None) -> int:
    """The target's 0-based rank in one user's score row."""
    if not np.all(np.isfinite(scores)):
        raise ValueError("non-finite scores: refusing to rank")
    t = float(scores[target])
    keep = np.ones(len(scores), dtype=bool) if candidates is None else np.zeros(len(scores), dtype=bool)
    if candidates is None:
        keep[np.asarray(list(exclude), dtype=np.int64)] = False
    else:
        keep[np.asarray(list(candidates), dtype=np.int64)] = True  # sampled negatives are distinct items
    keep[0] = keep[int(target)] = False
    pool = scores[keep]
    higher, ties = int((pool > t).sum()), int((pool == t).sum())
    return higher + min(int(math.floor(u * (ties + 1))), ties)


def ranks(scores: np.ndarray, users: Sequence[int], targets: Sequence[int], seed: int,
          histories: Optional[Sequence[Sequence[int]]] = None, negatives: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """[n] ranks for rows of ``scores`` ([n, n_items]); ``histories`` masked (full ranking) or ``negatives`` as candidates."""
    out = np.empty(len(users), dtype=np.int64)
    for row, (user, target) in enumerate(zip(users, targets)):
        out[row] = rank_one(
            np.asarray(scores[row], dtype=np.float64), int(target), tie_uniform(int(user), seed),
            exclude=() if histories is None else histories[row],
            candidates=None if negatives is None else negatives[row],
        )
    return out


def metrics(rank_values: Sequence[int], topk: Sequence[int] = (10, 20)) -> Dict[str, float]:
    out: Dict[str, float] = {}
    n = len(rank_values)
    for k in topk:
        hr = ndcg = mrr = 0.0
        for r in rank_values:
            if r < k:
                hr += 1.0
                ndcg += 1.0 / math.log2(r + 2)
                mrr += 1.0 / (r + 1)
        out[f"hr@{k}"] = out[f"recall@{k}"] = hr / n
        out[f"ndcg@{k}"] = ndcg / n
        out[f"mrr@{k}"] = mrr / n
    return out
