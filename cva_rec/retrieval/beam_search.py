"""Trie-constrained beam search over code paths, batched over users, on CPU or GPU (GRDR sec. 3.4).

At level ``l`` every live beam is a trie node; its children are one contiguous range of the
next level's arrays (``CodeTrie``), so the expansion of all beams of all users is a handful of
tensor ops: gather the child ranges, score each child as ``beam score + log P(code | prefix)``,
scatter the scores into a dense ``[users, beams * K]`` table (``-inf`` elsewhere) and keep the
top ``B`` per user. Only paths that exist in the trie can ever be kept, so every emitted path
leads to an item.

The path score is the model's log-likelihood ``sum_l log P(c_l | c_<l, user)`` with the
per-level distributions over all ``K`` codes (not renormalised over the valid children), the
quantity a brute-force enumeration of the trie's paths ranks by. With ``B`` at least the number
of distinct paths nothing is ever pruned, and the result is that exact ranking.
"""
from __future__ import annotations

from typing import Callable

import torch

from cva_rec.errors import ConfigError
from cva_rec.retrieval.beam_result import BeamResult  # noqa: F401  (re-exported with beam_search)
from cva_rec.retrieval.trie import TorchTrie

#: (level, user row of each beam [N], prefix codes [N, level]) -> log-probabilities [N, K]
StepFn = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def check_beam(beam: int, trie: TorchTrie) -> None:
    if beam < 1:
        raise ConfigError(f"beam width must be >= 1, got {beam}")
    if beam > trie.n_paths:
        raise ConfigError(f"beam width {beam} is wider than the trie allows: it holds only {trie.n_paths} distinct code paths; "
                          f"use --beam {trie.n_paths} or less")


#: batches up to this many users on CPU go through ``beam_search_small`` (numpy over the trie's
#: children; the dense tensor ops below are mostly fixed per-call overhead for a few users)
SMALL_BATCH = 4


def beam_search(step: StepFn | torch.Tensor, trie: TorchTrie, n_users: int, beam: int, small: bool | None = None) -> BeamResult:
    """Top-``beam`` trie paths per user by path log-likelihood. ``step``: the decoder, or a [users, L, K]
    tensor of per-level log-probabilities when they do not depend on the prefix. ``small``: force (True)
    or forbid (False) the small-batch path; default: used for CPU batches of at most ``SMALL_BATCH`` users
    (same result)."""
    check_beam(beam, trie)
    device = trie.child_ptr[0].device
    use_small = (device.type == "cpu" and 0 < n_users <= SMALL_BATCH) if small is None else small
    if use_small:
        from cva_rec.retrieval.beam_search_small import beam_search_small

        return beam_search_small(step, trie, n_users, beam)
    if isinstance(step, torch.Tensor):
        table = step
        step = lambda level, users, prefix: table[users, level]  # noqa: E731
    k_codes = trie.n_codes
    node = torch.zeros(n_users, 1, dtype=torch.long, device=device)  # every user starts at the root
    score = torch.zeros(n_users, 1, device=device)
    prefix = torch.zeros(n_users, 1, 0, dtype=torch.long, device=device)
    for level in range(trie.levels):
        width = node.shape[1]
        flat_node, flat_score = node.reshape(-1), score.reshape(-1)
        users = torch.arange(n_users, device=device).repeat_interleave(width)
        logp = step(level, users, prefix.reshape(n_users * width, level)).float()
        cand = (flat_score[:, None] + logp).masked_fill_(~_valid_children(trie, level, flat_node), float("-inf"))
        keep = min(beam, width * k_codes)
        top, idx = cand.view(n_users, width * k_codes).topk(keep, dim=1)
        parent = torch.div(idx, k_codes, rounding_mode="floor")
        code = idx % k_codes
        parent_node = flat_node.view(n_users, width).gather(1, parent)
        # the child (parent, code) is one binary search in the level's sorted (parent * K + code) keys
        keys = trie.node_keys[level]
        pos = torch.searchsorted(keys, (parent_node.clamp_min(0) * k_codes + code).reshape(-1)).view_as(code)
        node = torch.where(torch.isfinite(top), pos, torch.full_like(pos, -1))
        prev = prefix.gather(1, parent[..., None].expand(-1, -1, level))
        prefix = torch.cat([prev, code[..., None]], dim=2)
        score = top
    return BeamResult(node, score, prefix)


def _valid_children(trie: TorchTrie, level: int, nodes: torch.Tensor) -> torch.Tensor:
    """[N, K] bool: which codes continue each node (-1 = a dead beam: none) to a path of the trie."""
    ptr, k_codes = trie.child_ptr[level], trie.n_codes
    live = nodes >= 0
    safe = nodes.clamp_min(0)
    starts = ptr[safe]
    counts = torch.where(live, ptr[safe + 1] - starts, torch.zeros_like(starts))
    if bool((counts[live] == k_codes).all()):  # every live node has all K children (dense upper levels)
        return live[:, None].expand(-1, k_codes)
    rows = torch.repeat_interleave(torch.arange(len(nodes), device=nodes.device), counts)
    offsets = torch.cumsum(counts, 0) - counts
    child = starts[rows] + (torch.arange(len(rows), device=nodes.device) - offsets[rows])
    mask = torch.zeros(len(nodes), k_codes, dtype=torch.bool, device=nodes.device)
    mask[rows, trie.node_keys[level][child] % k_codes] = True
    return mask
