"""Paired bootstrap over users: a variant's metric minus the reference model's, with a 95% interval.

Each run writes every test user's rank (``per_user_test.npz``, :mod:`cva_rec.training.per_user_file`).
For one comparison table:

* every row is paired with the reference (the ID model) on the **same users**: a run whose tested users
  differ from the reference's is refused (:class:`~cva_rec.errors.DataError`), never silently intersected;
* a row with several seeds uses each user's metric averaged over its seeds (so does the reference);
* the user-level differences are resampled with the **same resample indices for every row**
  (:func:`resample_indices`, drawn once per table from a fixed seed), and the interval is the 2.5th and
  97.5th percentile of the resampled mean differences (the percentile bootstrap, numpy's linear
  interpolation between order statistics);
* an interval that holds 0 says the table cannot tell the two apart at this number of users.

The interval covers the users only (the test set as a sample of users); the spread over seeds is
reported beside it (mean over seeds), not folded in.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from cva_rec.errors import DataError
from cva_rec.io import load_numpy

N_RESAMPLES = 2000
RESAMPLE_SEED = 0
LEVEL = 0.95


@dataclass
class PerUser:
    """One run's tested users, sorted by ``user_token``: token, rank, number of candidates, cold flag."""

    tokens: np.ndarray
    ranks: np.ndarray
    n_candidates: np.ndarray
    cold: np.ndarray

    def metric(self, name: str) -> np.ndarray:
        """Per-user ``ndcg@K`` or ``hr@K`` (``recall@K`` is the same with one target per user)."""
        return metric_of_ranks(self.ranks, name)


def metric_of_ranks(ranks: np.ndarray, name: str) -> np.ndarray:
    kind, _, k = name.lower().partition("@")
    ranks = np.asarray(ranks, dtype=np.float64)
    hit = ranks < int(k)
    if kind in ("hr", "hit", "recall"):
        return hit.astype(np.float64)
    if kind == "ndcg":
        return np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    raise DataError(f"per-user metric {name!r} is not one of ndcg@K, hr@K, recall@K")


def random_rank_metric(n_candidates: np.ndarray, name: str) -> np.ndarray:
    """Per-user expected ``name`` of a uniformly random ranking of ``n_candidates`` items (target included)."""
    n = np.asarray(n_candidates, dtype=np.int64)
    k = int(name.partition("@")[2])
    top = np.arange(k, dtype=np.float64)
    per_rank = metric_of_ranks(top, name)  # the metric if the target lands at rank 0 .. k-1
    cum = np.concatenate([[0.0], np.cumsum(per_rank)])
    return cum[np.minimum(n, k)] / np.maximum(n, 1)


def load_per_user(path: Path) -> PerUser:
    """Read a run's ``per_user_test.npz``; unreadable or incomplete -> DataError."""
    try:  # through cva_rec.io like every file a user hands over: no pickle, sizes checked before reading
        with load_numpy(path, "per-user results file", error=DataError) as f:
            tokens, ranks = f["user_token"].astype(str), f["rank"].astype(np.int64)
            n_cand = f["n_candidates"].astype(np.int64)
            cold = f["cold"].astype(bool)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path} is not a per-user results file ({' '.join(str(exc).split())[:160]})") from None
    if len(set(tokens.tolist())) != len(tokens):
        raise DataError(f"{path} lists a user twice: one test row per user expected")
    order = np.argsort(tokens, kind="stable")
    return PerUser(tokens[order], ranks[order], n_cand[order], cold[order])


def same_users(runs: Sequence[PerUser], reference: PerUser, what: str) -> None:
    """Refuse runs whose tested users differ from the reference's (a pairing needs the same users)."""
    for run in runs:
        if len(run.tokens) != len(reference.tokens) or not np.array_equal(run.tokens, reference.tokens):
            only_ref = len(np.setdiff1d(reference.tokens, run.tokens))
            only_run = len(np.setdiff1d(run.tokens, reference.tokens))
            raise DataError(f"{what}: its tested users differ from the reference's ({only_ref} only in the reference, "
                            f"{only_run} only in the run): a paired interval needs the same users (same dataset and split)")


def seed_mean(runs: Sequence[PerUser], name: str, users: Optional[np.ndarray] = None) -> np.ndarray:
    """Each user's ``name`` averaged over the runs (seeds); ``users``: a boolean selection of users."""
    values = np.mean([r.metric(name) for r in runs], axis=0)
    return values if users is None else values[users]


def resample_indices(n_users: int, n_resamples: int = N_RESAMPLES, seed: int = RESAMPLE_SEED) -> np.ndarray:
    """[n_resamples, n_users] user positions drawn with replacement: one draw per table, used by every row."""
    return np.random.default_rng(seed).integers(0, n_users, size=(n_resamples, n_users))


def paired_interval(delta: np.ndarray, indices: np.ndarray, level: float = LEVEL) -> Dict[str, float]:
    """Mean of the per-user differences and its percentile-bootstrap interval over ``indices``."""
    delta = np.asarray(delta, dtype=np.float64)
    if delta.size == 0:
        return {"delta": float("nan"), "low": float("nan"), "high": float("nan"), "includes_zero": True, "n_users": 0}
    means = delta[indices].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return {"delta": float(delta.mean()), "low": float(low), "high": float(high),
            "includes_zero": bool(low <= 0.0 <= high), "n_users": int(delta.size)}


def compare(reference: Sequence[PerUser], variants: Dict[str, Sequence[PerUser]], metric: str = "ndcg@10",
            part: str = "all", n_resamples: int = N_RESAMPLES, seed: int = RESAMPLE_SEED) -> Dict[str, Dict[str, float]]:
    """name -> paired interval of (variant - reference) ``metric`` over the users of ``part`` (all | warm | cold).

    ``reference`` and each variant: one :class:`PerUser` per seed, all on the same users. The users of
    ``part`` are chosen by the reference's cold flags; the resample indices are drawn once, over them."""
    if not reference:
        raise DataError("no reference runs with per-user results to pair with")
    ref = reference[0]
    same_users(reference[1:], ref, "a reference seed")
    for name, runs in variants.items():
        same_users(runs, ref, name)
    select = {"all": np.ones(len(ref.tokens), dtype=bool), "warm": ~ref.cold, "cold": ref.cold}[part]
    indices = resample_indices(int(select.sum()), n_resamples, seed)
    base = seed_mean(reference, metric, select)
    return {name: paired_interval(seed_mean(runs, metric, select) - base, indices) for name, runs in variants.items() if runs}


def interval_cell(iv: Optional[Dict[str, float]], decimals: int = 4) -> str:
    """``+0.0123 [+0.0040, +0.0201]``, with `` ~0`` appended when the interval holds 0; ``-`` when missing."""
    if not iv or iv.get("n_users", 0) == 0:
        return "-"
    f = lambda v: f"{v:+.{decimals}f}"  # noqa: E731
    return f"{f(iv['delta'])} [{f(iv['low'])}, {f(iv['high'])}]" + (" ~0" if iv["includes_zero"] else "")


#: what the marker of :func:`interval_cell` means, for the line under a table
MARKER_NOTE = ("delta = the row minus the reference, per-user metric averaged over seeds, mean over users; "
               f"[95% CI] = paired percentile bootstrap over users ({N_RESAMPLES} resamples, the same users and the same "
               "resamples for every row); ~0 = the interval includes 0: no difference shown at this number of users")


def per_user_path(run_dir: Path) -> Optional[Path]:
    """A run folder's per-user results file; for a warmup folder (``stages.json``), its last stage's."""
    from cva_rec.jobs.run_folder import PER_USER_FILE

    run_dir = Path(run_dir)
    if (run_dir / PER_USER_FILE).is_file():
        return run_dir / PER_USER_FILE
    if (run_dir / "stages.json").is_file():  # stage folders are <index>-<stage>: the model the chain ends with
        stages = [p for p in run_dir.glob(f"*-*/{PER_USER_FILE}") if p.parent.name.split("-", 1)[0].isdigit()]
        if stages:
            return max(stages, key=lambda p: int(p.parent.name.split("-", 1)[0]))
    return None


def load_runs(run_dirs: Sequence[Path]) -> List[PerUser]:
    """The per-user results of each run folder, refusing a run without them."""
    from cva_rec.jobs.run_folder import PER_USER_FILE

    out = []
    for run in run_dirs:
        path = per_user_path(run)
        if path is None:
            raise DataError(f"{run} has no {PER_USER_FILE} (a run trained before per-user results were written): "
                            "retrain it for an interval over users")
        out.append(load_per_user(path))
    return out
