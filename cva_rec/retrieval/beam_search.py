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

from typing import Callable, NamedTuple

import torch

from cva_rec.errors import ConfigError
from cva_rec.retrieval.trie import TorchTrie

#: (level, user row of each beam [N], prefix codes [N, level]) -> log-probabilities [N, K]
StepFn = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


class BeamResult(NamedTuple):
    leaves: torch.Tensor  # [U, B] leaf index per beam, best first; -1 = no path
    scores: torch.Tensor  # [U, B] path log-likelihood (-inf for -1 leaves)
    paths: torch.Tensor  # [U, B, L] codes of each beam's path


def check_beam(beam: int, trie: TorchTrie) -> None:
    if beam < 1:
        raise ConfigError(f"beam width must be >= 1, got {beam}")
    if beam > trie.n_paths:
        raise ConfigError(f"beam width {beam} is wider than the trie allows: it holds only {trie.n_paths} distinct code paths; "
                          f"use --beam {trie.n_paths} or less")


def beam_search(step: StepFn, trie: TorchTrie, n_users: int, beam: int) -> BeamResult:
    """Top-``beam`` trie paths per user by path log-likelihood."""
    check_beam(beam, trie)
    device = trie.node_code[0].device
    k_codes = trie.n_codes
    node = torch.zeros(n_users, 1, dtype=torch.long, device=device)  # every user starts at the root
    score = torch.zeros(n_users, 1, device=device)
    prefix = torch.zeros(n_users, 1, 0, dtype=torch.long, device=device)
    for level in range(trie.levels):
        width = node.shape[1]
        flat_node, flat_score = node.reshape(-1), score.reshape(-1)
        users = torch.arange(n_users, device=device).repeat_interleave(width)
        logp = step(level, users, prefix.reshape(n_users * width, level)).float()
        ptr = trie.child_ptr[level]
        live = flat_node >= 0
        safe = flat_node.clamp_min(0)
        starts = ptr[safe]
        counts = torch.where(live, ptr[safe + 1] - starts, torch.zeros_like(starts))
        rows = torch.repeat_interleave(torch.arange(len(flat_node), device=device), counts)
        offsets = torch.cumsum(counts, 0) - counts
        child = starts[rows] + (torch.arange(len(rows), device=device) - offsets[rows])
        code = trie.node_code[level][child]
        cand = torch.full((len(flat_node), k_codes), float("-inf"), device=device)
        cand[rows, code] = flat_score[rows] + logp[rows, code]
        cand_node = torch.full((len(flat_node), k_codes), -1, dtype=torch.long, device=device)
        cand_node[rows, code] = child
        keep = min(beam, width * k_codes)
        top, idx = cand.view(n_users, width * k_codes).topk(keep, dim=1)
        parent = torch.div(idx, k_codes, rounding_mode="floor")
        node = cand_node.view(n_users, width * k_codes).gather(1, idx)
        node = torch.where(torch.isfinite(top), node, torch.full_like(node, -1))
        prev = prefix.gather(1, parent[..., None].expand(-1, -1, level))
        prefix = torch.cat([prev, (idx % k_codes)[..., None]], dim=2)
        score = top
    return BeamResult(node, score, prefix)
