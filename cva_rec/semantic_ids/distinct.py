"""Codes that carry identity: extra levels that resolve every collision (TIGER / GRID style).

RQ-KMeans codes of similar items collide (the ml-1m room codes: 6.8% unique, largest group 272).
A lookup table over the codes then cannot tell those items apart, which caps an ID-free model.
:func:`distinct_codes` appends E levels holding a **counter within each collision group** (items
sharing the full L-level code), written as E base-N digits, most significant first, with
``E = ceil(log_N(largest group))`` (0 when every code is already distinct). Every digit stays
below N, so the prefix n-gram tables (Eq. 1) and the diagnostics work unchanged on L + E levels.

* **Order within a group** (who gets counter 0, 1, ...): ascending ``order_key`` (``cva-rec
  tokenize`` passes each item's squared distance to its code's reconstruction, so 0 goes to the
  item the code describes best), then the item token. It depends on neither the row order nor
  the batch, so encoding stays deterministic (tested).
* **Rows without a code** (-1) stay -1 at the extra levels.
* :func:`with_distinct_room_codes` applies it to the room codes (the item-level, identity
  token); slice codes describe a segment, not an item, and get 0 at the extra levels (so a room
  prefix table initialised from the slice tables backs off to the L-level prefix: FLUID stage 3).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from cva_rec.errors import ConfigError


def extra_levels_needed(largest_group: int, n_codes: int) -> int:
    """Smallest E with N^E >= largest_group (0 for groups of one)."""
    levels, capacity = 0, 1
    while capacity < largest_group:
        levels, capacity = levels + 1, capacity * n_codes
    return levels


def distinct_codes(codes: torch.Tensor, n_codes: int, order_key: Optional[Sequence[float]] = None,
                   tokens: Optional[Sequence[str]] = None) -> tuple[torch.Tensor, int]:
    """codes [n, L] (-1 = no code) -> (codes [n, L + E] distinct on every coded row, E)."""
    codes = torch.as_tensor(codes, dtype=torch.long)
    if codes.dim() != 2:
        raise ConfigError(f"codes must be [n, L], got shape {tuple(codes.shape)}")
    n = codes.shape[0]
    valid = (codes >= 0).all(1).numpy()
    if not valid.any():
        return codes.clone(), 0
    key = np.zeros(n) if order_key is None else np.asarray(order_key, dtype=np.float64)
    names = np.array([str(t) for t in tokens]) if tokens is not None else np.array([f"{i:012d}" for i in range(n)])
    if len(key) != n or len(names) != n:
        raise ConfigError(f"order_key and tokens need one entry per row ({n})")
    rows = np.flatnonzero(valid)
    _, group, counts = np.unique(codes[rows].numpy(), axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    extra = extra_levels_needed(int(counts.max()), n_codes)
    out = torch.full((n, codes.shape[1] + extra), -1, dtype=torch.long)
    out[:, : codes.shape[1]] = codes
    if extra == 0:
        return out, 0
    # sort by (group, order key, token); the counter is the position inside the group
    order = np.lexsort((names[rows], key[rows], group))
    sorted_group = group[order]
    starts = np.concatenate([[0], np.flatnonzero(sorted_group[1:] != sorted_group[:-1]) + 1])
    counter = np.arange(len(order)) - np.repeat(starts, np.diff(np.concatenate([starts, [len(order)]])))
    counters = np.empty(len(rows), dtype=np.int64)
    counters[order] = counter
    for level in range(extra):  # most significant digit first
        digit = (counters // n_codes ** (extra - 1 - level)) % n_codes
        out[torch.from_numpy(rows), codes.shape[1] + level] = torch.from_numpy(digit)
    return out, extra


def with_distinct_room_codes(codes, order_key: Optional[Sequence[float]] = None):
    """A ``SemanticCodes`` whose room codes are distinct per item (see the module docstring)."""
    from cva_rec.semantic_ids.codes import SemanticCodes

    room, extra = distinct_codes(codes.room_codes, codes.n_codes, order_key, codes.item_ids or None)
    if extra == 0:
        return codes, 0
    n, s, _ = codes.slice_codes.shape
    pad = torch.where(codes.slice_mask[..., None], torch.zeros(n, s, extra, dtype=torch.long),
                      torch.full((n, s, extra), -1, dtype=torch.long))
    slices = torch.cat([codes.slice_codes, pad], dim=2)
    return SemanticCodes(slices, codes.slice_mask, room, codes.n_codes, list(codes.item_ids)), extra
