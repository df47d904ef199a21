"""Ranking evaluation: full ranking (history masked) or sampled negatives (uniform or by popularity).

Each evaluated user contributes one ``rank``: how many candidate items score strictly
higher than the held-out target (0 = top), plus a uniformly random place among the items
whose score *equals* the target's. Ties matter for content and semantic-ID encoders (items
sharing a code get identical vectors); counting only strictly higher items would put the target
at the top of its tie group and reward collisions (a constant scorer would get HR = 1). The
draw comes from a seeded generator, so evaluation stays deterministic. All metrics derive
from ranks, which makes them cheap to gather across DDP ranks and to break down by target
popularity:

* HR@K = Recall@K = [rank < K] (one held-out item per user, leave-two-out);
* NDCG@K = [rank < K] / log2(rank + 2);  MRR@K = [rank < K] / (rank + 1).

These equal RecBole's ``Hit``/``NDCG``/``MRR``/``Recall`` on the same score matrix (tested),
up to RecBole's arbitrary ordering of exactly tied scores.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch

from cva_rec.config.schema import METRIC_NAMES as METRICS  # one list of metric names, declared with the config keys
from cva_rec.errors import DataError


def target_ranks(
    scores: torch.Tensor,
    targets: torch.Tensor,
    history: Optional[tuple] = None,
    negatives: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    tie_uniform: Optional[torch.Tensor] = None,
    buffers: Optional["RankBuffers"] = None,
) -> torch.Tensor:
    """Rank of each row's target among the candidates.

    scores: [B, n_items] (modified in place: padding and history set to -inf);
    history: (rows, items) pairs to mask (the target itself is never masked);
    negatives: [B, N] sampled candidate ids for sampled evaluation, or None for full ranking;
    generator: (CPU) source of the random place within a tie group (default: seeded with 0);
    tie_uniform: [B] numbers in [0, 1) to use for that place instead of ``generator``
        (e.g. :func:`per_user_uniform`, which makes ranks independent of batch and DDP rank);
    buffers: scratch memory kept across the batches of one evaluation (:class:`RankBuffers`).
    """
    scores[:, 0] = float("-inf")
    rows = torch.arange(scores.shape[0], device=scores.device)
    target_scores = scores[rows, targets].clone()
    if history is not None:
        h_rows, h_items = history
        scores[h_rows, h_items] = float("-inf")
    if negatives is None:
        # every item is a candidate, the target included: it is never higher than itself, and it is one
        # of its own ties unless the history mask hid it. Counting so needs no [B, n_items] mask of "the
        # others" (at 100k items and 256 users that mask and its two products were 75 MB of the peak).
        higher, equal = count_above_and_equal(scores, target_scores, buffers)
        ties = equal - (scores[rows, targets] == target_scores).long()
    else:
        cand, others = scores.gather(1, negatives), negatives != targets[:, None]
        higher = ((cand > target_scores[:, None]) & others).sum(1)
        ties = ((cand == target_scores[:, None]) & others).sum(1)
    if tie_uniform is not None:
        u = tie_uniform.to(device=ties.device, dtype=torch.float64)
    else:
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        u = torch.rand(len(ties), generator=generator).to(ties.device)
    return higher + (u * (ties + 1).to(u.dtype)).long().clamp_max(ties)


class RankBuffers:
    """Scratch memory of one evaluation, reused batch after batch.

    A fresh ``[B, n_items]`` comparison result per batch is a fresh mmap of tens of MB that the
    kernel page-faults in again every batch (measured: millions of minor faults and most of the
    evaluation's time in the system at 110k users x 10k items). One buffer, grown to the largest
    batch and dropped with the evaluation, costs that once.
    """

    def __init__(self):
        self._flags = np.empty(0, dtype=np.bool_)

    def flags(self, shape) -> np.ndarray:
        n = int(shape[0]) * int(shape[1])
        if self._flags.size < n:
            self._flags = np.empty(n, dtype=np.bool_)
        return self._flags[:n].reshape(shape)


def count_above_and_equal(scores: torch.Tensor, threshold: torch.Tensor, buffers: Optional[RankBuffers] = None):
    """Per row: how many scores are ``>`` and how many ``==`` the row's threshold (NaN is neither).

    On the CPU through numpy: its comparison and ``count_nonzero`` kernels are about 5x faster than
    torch's comparison + integer ``sum`` over a ``[4096, 10k]`` float32 matrix (measured: 30 ms vs
    154 ms of CPU per pass), which made counting cost more than the scoring matmul itself. The
    counts are exact integers either way. Elsewhere (CUDA) torch's own kernels.
    """
    if scores.device.type != "cpu" or scores.dtype != torch.float32:
        t = threshold[:, None]
        return (scores > t).sum(1), (scores == t).sum(1)
    a = scores.detach().contiguous().numpy()
    t = threshold.detach().to(torch.float32).numpy()[:, None]
    flags = buffers.flags(a.shape) if buffers is not None else np.empty(a.shape, dtype=np.bool_)
    above = np.count_nonzero(np.greater(a, t, out=flags), axis=1)
    equal = np.count_nonzero(np.equal(a, t, out=flags), axis=1)
    return torch.from_numpy(above.astype(np.int64)), torch.from_numpy(equal.astype(np.int64))


def all_finite(scores: torch.Tensor) -> bool:
    """True when every score is finite. A sum is one cheap reduction and is finite whenever every
    term is (NaN and inf propagate); only when it is not (a NaN, an inf, or a float32 overflow of
    huge finite scores) is the exact elementwise check paid for."""
    return bool(torch.isfinite(scores.sum())) or bool(torch.isfinite(scores).all())


def chunked_target_ranks(
    score_chunk: Callable[[int, int], torch.Tensor],
    n_items: int,
    targets: torch.Tensor,
    chunk: int,
    history: Optional[tuple] = None,
    tie_uniform: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """:func:`target_ranks` of full ranking without the ``[B, n_items]`` matrix.

    ``score_chunk(lo, hi)`` returns the scores ``[B, hi - lo]`` of items ``lo .. hi-1``. Two passes:
    the first reads each target's score from the chunk that holds it, the second counts the
    higher and tied items chunk by chunk, so a target is compared with the very numbers the
    unchunked path compares it with (exact ties stay ties). Memory ``B x chunk``; scoring work 2x.
    Raises ``FloatingPointError`` on a non-finite score (as the caller's check of the full matrix).
    """
    rows = torch.arange(len(targets), device=targets.device)
    target_scores = torch.empty(len(targets), dtype=torch.float32, device=targets.device)
    bounds = [(lo, min(lo + chunk, n_items)) for lo in range(0, n_items, chunk)]
    for lo, hi in bounds:
        inside = (targets >= lo) & (targets < hi)
        if inside.any():
            target_scores[inside] = score_chunk(lo, hi).float()[rows[inside], targets[inside] - lo]
    higher = torch.zeros(len(targets), dtype=torch.long, device=targets.device)
    ties = torch.zeros_like(higher)
    for lo, hi in bounds:
        scores = score_chunk(lo, hi).float()
        if not torch.isfinite(scores[:, 1:] if lo == 0 else scores).all():
            raise FloatingPointError(f"non-finite scores among items {lo}..{hi - 1}")
        if lo == 0:
            scores[:, 0] = float("-inf")  # padding
        if history is not None:
            h_rows, h_items = history
            sel = (h_items >= lo) & (h_items < hi)
            scores[h_rows[sel], h_items[sel] - lo] = float("-inf")
        inside = (targets >= lo) & (targets < hi)
        scores[rows[inside], targets[inside] - lo] = float("nan")  # the target itself: neither higher nor tied
        higher += (scores > target_scores[:, None]).sum(1)
        ties += (scores == target_scores[:, None]).sum(1)
    u = tie_uniform.to(device=ties.device, dtype=torch.float64) if tie_uniform is not None else \
        torch.rand(len(ties), generator=torch.Generator().manual_seed(0)).to(ties.device)
    return higher + (u * (ties + 1).to(u.dtype)).long().clamp_max(ties)


def metrics_from_ranks(ranks: torch.Tensor | np.ndarray, metrics: Iterable[str] = METRICS, topk: Sequence[int] = (10, 20)) -> Dict[str, float]:
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    out: Dict[str, float] = {}
    if ranks.numel() == 0:
        return {f"{m}@{k}": None for m in metrics for k in topk}  # no users: undefined, not 0
    for k in topk:
        hit = (ranks < k).double()
        for m in metrics:
            m = m.lower()
            if m in ("hr", "recall"):
                v = hit
            elif m == "ndcg":
                v = hit / torch.log2(ranks + 2)
            elif m == "mrr":
                v = hit / (ranks + 1)
            else:
                raise ValueError(f"unknown metric {m}")
            out[f"{m}@{k}"] = float(v.mean())
    return out


def popularity_levels(item_popularity: torch.Tensor, n_levels: int) -> torch.Tensor:
    """Item -> popularity level 1..n_levels: items sorted by training frequency and cut into
    ``n_levels`` equal-size groups (level 1 = least popular), as in the CVA paper's Table 15."""
    pop = item_popularity.clone().float()
    pop[0] = float("inf")  # padding never counts
    order = torch.argsort(pop[1:], stable=True) + 1
    levels = torch.zeros_like(item_popularity, dtype=torch.long)
    levels[order] = torch.div(torch.arange(len(order)) * n_levels, len(order), rounding_mode="floor") + 1
    return levels


def negative_weights(item_popularity: torch.Tensor, sampler: str) -> torch.Tensor:
    """[n_items] sampling weights of evaluation negatives (``eval.negatives_sampler``): ``uniform``
    (every item alike, the SASRec / BERT4Rec protocol) or ``popularity`` (training-target counts,
    the CVA paper's App. A). Padding never."""
    if sampler == "uniform":
        w = torch.ones(len(item_popularity), dtype=torch.float64)
    elif sampler == "popularity":
        w = item_popularity.double().clamp(min=0)
    else:
        raise ValueError(f"unknown negatives sampler {sampler!r}")
    w[0] = 0
    return w


def per_user_uniform(users: torch.Tensor, seed: int) -> torch.Tensor:
    """[len(users)] float64 in [0, 1), a fixed function of (seed, user id): splitmix64 of both.

    Used for the random place of a target within its tie group: a per-user number does not
    depend on the batch or DDP rank that evaluates the user, so 1 and N processes agree.
    """
    with np.errstate(over="ignore"):
        x = users.detach().cpu().numpy().astype(np.uint64) + np.uint64(int(seed) % 2**32) * np.uint64(0x100000001B3)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return torch.from_numpy((x >> np.uint64(11)).astype(np.float64) / float(2**53))


def sample_negatives_per_user(weights: torch.Tensor, users: torch.Tensor, n: int, seed: int,
                              targets: Optional[torch.Tensor] = None, history: Optional[tuple] = None) -> torch.Tensor:
    """[len(users), n] distinct negatives per user, drawn in proportion to ``weights``
    (:func:`negative_weights`), never padding, the user's target or an item of its history.

    history: (rows, items) pairs, rows ascending (``UserHistory.index_pairs``). Each user's draw
    comes from a generator seeded with ``seed`` and the user id, and what it excludes is that
    user's own, so the negatives are a function of (seed, user) only: the same for every model
    at a given seed, and for 1 or N processes and any eval batch size.
    """
    weights = weights.double().clone()
    weights[0] = 0
    bounds = None
    if history is not None:
        h_rows, h_items = (torch.as_tensor(t).cpu() for t in history)
        bounds = torch.searchsorted(h_rows, torch.arange(len(users) + 1))
    g = torch.Generator()
    out = torch.empty((len(users), n), dtype=torch.long)
    for row, user in enumerate(users.tolist()):
        w = weights
        if targets is not None or bounds is not None:
            w = weights.clone()
            if targets is not None:
                w[int(targets[row])] = 0
            if bounds is not None:
                w[h_items[bounds[row]:bounds[row + 1]]] = 0
        if int((w > 0).sum()) < n:
            raise DataError(f"eval.negatives={n}: user {user} has only {int((w > 0).sum())} items left to sample "
                            "(outside its history and target, with non-zero weight); lower eval.negatives")
        g.manual_seed(int(seed) * 1_000_003 + int(user))
        out[row] = torch.multinomial(w, n, replacement=False, generator=g)
    return out


class RankCollector:
    """Accumulates (user, target, rank) triples over an evaluation and turns them into metrics."""

    def __init__(self):
        self.users, self.targets, self.ranks = [], [], []

    def add(self, users: torch.Tensor, targets: torch.Tensor, ranks: torch.Tensor) -> None:
        self.users.append(users.detach().cpu())
        self.targets.append(targets.detach().cpu())
        self.ranks.append(ranks.detach().cpu())

    def tensors(self):
        cat = lambda xs: torch.cat(xs) if xs else torch.zeros(0, dtype=torch.long)  # noqa: E731
        return cat(self.users), cat(self.targets), cat(self.ranks)

    @staticmethod
    def dedupe(users, targets, ranks):
        """Keep one row per user (DDP eval samplers pad with repeated users).

        A repeated user must have the same target each time: two different held-out items
        for one user would mean the split has several test rows per user, and dropping
        one would silently change the metric.
        """
        uniq, first, inverse = np.unique(users.numpy(), return_index=True, return_inverse=True)
        if len(uniq) < len(users):
            first_target = targets[torch.from_numpy(first)][torch.from_numpy(inverse.reshape(-1))]
            if not torch.equal(first_target, targets):
                bad = users[first_target != targets][:5].tolist()
                raise RuntimeError(f"users evaluated twice with different targets (e.g. user ids {bad}); one test row per user expected")
        first = torch.from_numpy(first)
        return users[first], targets[first], ranks[first]

    def compute(self, metrics, topk, item_popularity: Optional[torch.Tensor] = None, n_levels: int = 0, seen_in_training: Optional[torch.Tensor] = None,
                cold_items: Optional[torch.Tensor] = None) -> Dict[str, object]:
        """Overall metrics; with ``item_popularity`` and ``n_levels`` also per popularity level and the
        inductive split; with ``cold_items`` ([n_items] bool, ``dataset.cold_items``) also ``warm``
        and ``cold`` (users whose target is a held-out item)."""
        users, targets, ranks = self.dedupe(*self.tensors())
        result: Dict[str, object] = {"n_users": int(users.numel()), **metrics_from_ranks(ranks, metrics, topk)}
        if item_popularity is not None and n_levels:
            levels = popularity_levels(item_popularity, n_levels)[targets]
            result["popularity_levels"] = {
                str(lv): {"n_users": int((levels == lv).sum()), **metrics_from_ranks(ranks[levels == lv], metrics, topk)}
                for lv in range(1, n_levels + 1)
            }
        if seen_in_training is not None:
            # inductive = the target never occurs in any user's training part (as input or target);
            # "popularity == 0" would also count items seen only as a user's first input
            unseen = ~seen_in_training.bool().cpu()[targets]
            result["inductive"] = {"n_users": int(unseen.sum()), **metrics_from_ranks(ranks[unseen], metrics, topk)}
        if cold_items is not None:
            cold = cold_items.bool().cpu()[targets]
            for name, rows in (("warm", ~cold), ("cold", cold)):
                result[name] = {"n_users": int(rows.sum()), **metrics_from_ranks(ranks[rows], metrics, topk)}
        return result


def flat_metrics(result: Mapping[str, object]) -> Dict[str, float]:
    """Only the scalar overall metrics (for loggers)."""
    return {k: v for k, v in result.items() if isinstance(v, float)}
