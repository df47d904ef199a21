"""Trie-constrained beam search for a few users on CPU, in numpy over the trie's CSR arrays.

``beam_search.beam_search`` expands the beams of a whole batch through dense ``[users, beams * K]``
tables (a validity mask, ``topk``, ``searchsorted`` per level): the right shape for hundreds of
users or a GPU, but for one user its ~15 tensor ops per level are mostly fixed per-call overhead.
Here only the children that exist are touched: a live beam's children are one contiguous range
``child_ptr[l][node] : child_ptr[l][node + 1]`` of the next level, so per level the candidates
are those ranges concatenated (in beam order, codes ascending within a beam: the order of the
dense table's columns), their scores ``beam score + log P(code | prefix)`` (the same float32
additions), and the top ``B`` per user come from ``argpartition`` plus one sort of ``B`` values.
Ties are broken by the lower column, as a stable sort would; the dense path leaves the order of
exactly tied scores to ``torch.topk``. A child's node index is its position in the level, so
no search is needed.

The result is the dense path's: the same leaves, scores and paths in the same order (tested);
``beam_search`` calls this automatically for small CPU batches.
"""
from __future__ import annotations

import numpy as np
import torch

from cva_rec.retrieval.beam_result import BeamResult
from cva_rec.retrieval.trie import TorchTrie


def beam_search_small(step, trie: TorchTrie, n_users: int, beam: int):
    """Top-``beam`` trie paths per user (``beam_search``'s contract; the beam width already checked).
    ``step``: a ``StepFn``, or a [users, L, K] tensor of per-level log-probabilities that do not depend
    on the prefix (``reranker_context``), read here without a call per level."""

    k_codes = trie.n_codes
    table = step.detach().float().numpy() if isinstance(step, torch.Tensor) else None
    beam_user = np.arange(n_users)  # user of each live beam (beams grouped by user, best first)
    node = np.zeros(n_users, dtype=np.int64)  # every user starts at the root
    score = np.zeros(n_users, dtype=np.float32)
    parents, codes = [], []  # per level: kept beams' parent beam and code (paths are read back at the end)
    for level in range(trie.levels):
        if table is not None:
            logp = table[beam_user, level]
        else:
            prefix = _paths(parents, codes, len(node), level)
            logp = step(level, torch.from_numpy(beam_user), torch.from_numpy(prefix)).detach().float().numpy()
        full = level < len(trie.full_levels) and trie.full_levels[level]
        if full:  # every beam has all K children (the upper levels of a big trie): [beams, K] arithmetic
            cand = (score[:, None] + logp).ravel()
            per_user = None if n_users == 1 else np.bincount(beam_user, minlength=n_users) * k_codes
        else:
            ptr = trie.child_ptr[level].numpy()  # a CPU tensor: a view, no copy
            starts = ptr[node]
            counts = ptr[node + 1] - starts
            parent = np.repeat(np.arange(len(node)), counts)  # beam each child continues
            child = np.arange(len(parent)) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
            code = trie.node_keys[level].numpy()[child] % k_codes
            cand = score[parent] + logp[parent, code]
            per_user = None if n_users == 1 else np.bincount(beam_user[parent], minlength=n_users)
        if n_users == 1:
            keep = _top(cand, beam)
        else:  # a few users: select within each user's contiguous run of children
            bounds = np.concatenate([[0], np.cumsum(per_user)])
            keep = np.concatenate([bounds[u] + _top(cand[bounds[u]:bounds[u + 1]], beam) for u in range(n_users)])
        if full:
            parent, code = np.divmod(keep, k_codes)
            child = node[parent] * k_codes + code
        else:
            parent, child, code = parent[keep], child[keep], code[keep]
        beam_user, node, score = beam_user[parent], child, cand[keep]
        parents.append(parent)
        codes.append(code)
    prefix = _paths(parents, codes, len(node), trie.levels)
    shape = (n_users, beam)
    if len(node) != n_users * beam:  # only with non-finite log-probabilities: pad as the dense path (-1, -inf)
        place = np.arange(len(node)) - np.searchsorted(beam_user, beam_user)
        leaves, scores = np.full(shape, -1, dtype=np.int64), np.full(shape, -np.inf, dtype=np.float32)
        paths = np.zeros((*shape, trie.levels), dtype=np.int64)
        leaves[beam_user, place], scores[beam_user, place], paths[beam_user, place] = node, score, prefix
        node, score, prefix = leaves, scores, paths
    # otherwise every user has exactly ``beam`` live leaves (beam <= distinct paths; each kept node has a child)
    return BeamResult(torch.from_numpy(node.reshape(shape)), torch.from_numpy(score.reshape(shape)),
                      torch.from_numpy(prefix.reshape(*shape, trie.levels)))


def _paths(parents, codes, n_beams: int, levels: int) -> np.ndarray:
    """[n_beams, levels] codes of the current beams, walking the kept (parent, code) pairs back up."""
    out = np.empty((n_beams, levels), dtype=np.int64)
    beam = np.arange(n_beams)
    for level in range(levels - 1, -1, -1):
        out[:, level] = codes[level][beam]
        beam = parents[level][beam]
    return out


def _top(scores: np.ndarray, beam: int) -> np.ndarray:
    """Positions of the ``beam`` best finite scores, best first, ties by position."""
    finite = np.isfinite(scores)
    pos = None if finite.all() else np.flatnonzero(finite)
    vals = scores if pos is None else scores[pos]
    if len(vals) > beam:
        top = np.argpartition(-vals, beam - 1)[:beam]
        top.sort()
    else:
        top = np.arange(len(vals))
    top = top[np.argsort(-vals[top], kind="stable")]
    return top if pos is None else pos[top]
