"""Beam leaves -> each user's candidate items (GRDR sec. 3.4: map paths to items, de-duplicate in beam order).

An item can be reached by several beams (one per view, or several views on one path) and a
leaf can hold several items (code collisions); an item keeps the place of its best beam. Items
of the user's history are dropped before the list is cut to ``n_candidates``, as full ranking
masks them too, except the user's target (full ranking never masks the target). Items on one
leaf keep the trie's order (ascending item id): they have the same path likelihood.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from cva_rec.retrieval.trie import CodeTrie


def recalled_items(trie: CodeTrie, leaves: np.ndarray | torch.Tensor, n_candidates: int,
                   history: Optional[tuple] = None, targets: Optional[np.ndarray] = None) -> np.ndarray:
    """``leaves`` [U, B] (best first, -1 = none) -> candidates [U, n_candidates] (0 = padding).

    ``history``: (rows, items) pairs of each user's history, as ``UserHistory.index_pairs``
    returns them; ``targets`` [U]: the held-out items, never dropped.
    """
    leaves = np.asarray(leaves.cpu().numpy() if isinstance(leaves, torch.Tensor) else leaves, dtype=np.int64)
    n_users = leaves.shape[0]
    if n_users == 1:  # one user (serving): the same steps without per-user keys (fewer array ops)
        return _recalled_items_one(trie, leaves[0], n_candidates, history, targets)[None, :]
    out = np.zeros((n_users, n_candidates), dtype=np.int64)
    live = leaves >= 0
    beam_user = np.broadcast_to(np.arange(n_users)[:, None], leaves.shape)[live]
    flat = leaves[live]  # row-major: per user, best beam first
    lengths = trie.leaf_ptr[flat + 1] - trie.leaf_ptr[flat]
    users = np.repeat(beam_user, lengths)
    items = trie.items_of_leaves(flat)
    if len(items) == 0:
        return out
    span = int(max(items.max(), 0 if targets is None else np.max(targets, initial=0))) + 1
    key = users * span + items
    drop = np.zeros(len(key), dtype=bool)
    if history is not None and len(history[0]):
        h_rows, h_items = (np.asarray(h.cpu().numpy() if isinstance(h, torch.Tensor) else h, dtype=np.int64) for h in history)
        inside = h_items < span
        seen = h_rows[inside] * span + h_items[inside]
        if targets is not None:  # the target stays a candidate even when the user saw it before
            t = np.asarray(targets, dtype=np.int64)
            seen = np.setdiff1d(seen, np.arange(n_users) * span + t)
        drop = np.isin(key, seen)
    key, users, items = key[~drop], users[~drop], items[~drop]
    _, first = np.unique(key, return_index=True)
    first.sort()  # back to beam order
    users, items = users[first], items[first]
    per_user = np.bincount(users, minlength=n_users)
    rank = np.arange(len(users)) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    keep = rank < n_candidates
    out[users[keep], rank[keep]] = items[keep]
    return out


def _recalled_items_one(trie: CodeTrie, leaves: np.ndarray, n_candidates: int, history, targets) -> np.ndarray:
    """``recalled_items`` for one user: leaves [B] -> candidates [n_candidates]."""
    out = np.zeros(n_candidates, dtype=np.int64)
    items = trie.items_of_leaves(leaves[leaves >= 0])
    if history is not None and len(history[0]):
        h_rows, seen = (np.asarray(h.cpu().numpy() if isinstance(h, torch.Tensor) else h, dtype=np.int64) for h in history)
        seen = seen[h_rows == 0]
        if targets is not None:  # the target stays a candidate even when the user saw it before
            seen = seen[seen != int(np.asarray(targets).reshape(-1)[0])]
        items = items[~np.isin(items, seen)]
    _, first = np.unique(items, return_index=True)
    first.sort()  # back to beam order
    items = items[first[:n_candidates]]
    out[:len(items)] = items
    return out


def candidate_recall(candidates: np.ndarray, targets: np.ndarray, ks) -> dict:
    """Fraction of users whose target is among their first ``k`` candidates, for each k."""
    targets = np.asarray(targets)
    pos = np.where(candidates == targets[:, None], np.arange(candidates.shape[1])[None, :], candidates.shape[1])
    first = pos.min(1)
    return {f"recall@{k}": float((first < k).mean()) if len(first) else None for k in ks}
