"""A prefix trie over every item's code paths, in compact arrays (GRDR sec. 3.4, offline indexing).

An item has ``V`` code paths (views) of ``L`` levels over ``K`` codes each. The trie holds every
distinct path once; its nodes at depth ``l + 1`` are the distinct length-``l + 1`` prefixes, in
lexicographic order, so the children of a node form one contiguous, code-sorted range of the
next level (CSR per level, no Python object per node):

* ``node_code[l]``  [n_l] int16/int32: the code of each node at depth ``l + 1``;
* ``child_ptr[l]``  [n_{l-1} + 1] int32 (int64 beyond 2^31): node ``p`` at depth ``l`` (the root for ``l = 0``) has
  the children ``child_ptr[l][p] : child_ptr[l][p + 1]`` among the depth-``l + 1`` nodes;
* ``leaf_ptr``      [n_paths + 1] and ``leaf_items`` [n_items * V] (int32 when they fit), ``leaf_views`` (int8): the
  items (and which of their views) whose path ends at each leaf; several items can share a
  path (code collisions) and one item may reach one leaf by several views.

Built with one sort of the ``n_items * V`` paths: at 1M items x 4 views the build is a few
seconds of numpy (``cva-rec bench retrieval`` measures it). ``to(device)`` gives torch copies of
the arrays that constrained beam search reads on CPU or GPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch

from cva_rec.errors import ConfigError
from cva_rec.data.ranges import range_positions


def _sort_paths(paths: np.ndarray, n_codes: int) -> np.ndarray:
    """Row order that sorts ``paths`` [P, L] lexicographically (one int64 key when K^L fits)."""
    levels = paths.shape[1]
    if levels * np.log2(max(n_codes, 2)) < 62:
        key = np.zeros(len(paths), dtype=np.int64)
        for level in range(levels):
            key = key * n_codes + paths[:, level]
        return np.argsort(key, kind="stable")
    return np.lexsort(paths.T[::-1])


@dataclass
class CodeTrie:
    n_codes: int
    node_code: List[np.ndarray]
    child_ptr: List[np.ndarray]
    leaf_ptr: np.ndarray
    leaf_items: np.ndarray
    leaf_views: np.ndarray
    n_items: int

    @property
    def levels(self) -> int:
        return len(self.node_code)

    @property
    def n_paths(self) -> int:
        """Distinct full code paths (leaves)."""
        return len(self.leaf_ptr) - 1

    def level_sizes(self) -> List[int]:
        return [len(c) for c in self.node_code]

    @classmethod
    def build(cls, codes: np.ndarray | torch.Tensor, n_codes: int, items: Optional[np.ndarray] = None) -> "CodeTrie":
        """``codes`` [n, V, L] (or [n, L]) non-negative ints < ``n_codes``; row i is item ``items[i]``
        (default: i). Every row must have every path: a missing code (-1) is an error, not a gap."""
        codes = np.asarray(codes.cpu().numpy() if isinstance(codes, torch.Tensor) else codes)
        if codes.ndim == 2:
            codes = codes[:, None, :]
        if codes.ndim != 3 or codes.shape[0] == 0 or codes.shape[2] == 0:
            raise ConfigError(f"trie codes must be [n_items, views, levels] with n_items, levels >= 1; got shape {list(codes.shape)}")
        n, views, levels = codes.shape
        if codes.min() < 0 or codes.max() >= n_codes:
            bad = np.nonzero(((codes < 0) | (codes >= n_codes)).any((1, 2)))[0]
            raise ConfigError(f"{len(bad)} item rows have codes outside [0, {n_codes}) (e.g. rows {bad[:5].tolist()}); "
                              "every item needs a full code path in every view")
        items = np.arange(n, dtype=np.int64) if items is None else np.asarray(items, dtype=np.int64)
        if items.shape != (n,):
            raise ConfigError(f"{len(items)} item ids for {n} rows of codes")
        paths = codes.reshape(n * views, levels).astype(np.int64)
        path_items = np.repeat(items, views)
        path_views = np.tile(np.arange(views, dtype=np.int8), n)
        order = _sort_paths(paths, n_codes)
        paths, path_items, path_views = paths[order], path_items[order], path_views[order]
        code_dtype = np.int16 if n_codes <= np.iinfo(np.int16).max else np.int32
        node_code, child_ptr = [], []
        new_prefix = np.zeros(len(paths), dtype=bool)
        new_prefix[0] = True
        parent_of_row = np.zeros(len(paths), dtype=np.int64)  # node index (previous depth) of each row
        n_parents = 1
        for level in range(levels):
            if len(paths) > 1:
                new_prefix[1:] |= paths[1:, level] != paths[:-1, level]
            node_of_row = np.cumsum(new_prefix) - 1
            first_rows = np.flatnonzero(new_prefix)
            node_code.append(paths[first_rows, level].astype(code_dtype))
            counts = np.bincount(parent_of_row[first_rows], minlength=n_parents)
            child_ptr.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
            parent_of_row, n_parents = node_of_row, len(first_rows)
        leaf_counts = np.bincount(parent_of_row, minlength=n_parents)
        leaf_ptr = np.concatenate([[0], np.cumsum(leaf_counts)]).astype(np.int64)
        # offsets and item ids as int32 whenever they fit: the index is mostly these arrays
        small = lambda a: a.astype(np.int32) if a.size == 0 or a.max() <= np.iinfo(np.int32).max else a  # noqa: E731
        return cls(int(n_codes), node_code, [small(p) for p in child_ptr], small(leaf_ptr), small(path_items), path_views, int(n))

    # -- queries ----------------------------------------------------------------------------
    def leaf_of(self, paths: np.ndarray) -> np.ndarray:
        """Full paths [m, L] -> leaf index per row, -1 where the path is not in the trie."""
        paths = np.asarray(paths, dtype=np.int64).reshape(-1, self.levels)
        node = np.zeros(len(paths), dtype=np.int64)  # the root
        found = np.ones(len(paths), dtype=bool)
        for level in range(self.levels):
            keys = self.node_keys(level)
            query = node * self.n_codes + paths[:, level]
            pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
            found &= keys[pos] == query
            node = np.where(found, pos, 0)
        return np.where(found, node, -1)

    def node_parent(self, level: int) -> np.ndarray:
        """Parent (node index at depth ``level``) of every node at depth ``level + 1``."""
        ptr = self.child_ptr[level]
        return np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))

    def node_keys(self, level: int) -> np.ndarray:
        """``parent * K + code`` of the nodes at depth ``level + 1``: sorted, because nodes are in
        (parent, code) order, so a path step is one binary search."""
        return self.node_parent(level) * self.n_codes + self.node_code[level].astype(np.int64)

    def items_of_leaves(self, leaves: np.ndarray) -> np.ndarray:
        """Concatenated items of the given leaves (in leaf order; an item may repeat across views)."""
        leaves = np.asarray(leaves, dtype=np.int64)
        starts = self.leaf_ptr[leaves]
        return self.leaf_items[range_positions(starts, self.leaf_ptr[leaves + 1] - starts)]

    def paths(self) -> np.ndarray:
        """Every leaf's full path [n_paths, L] (in leaf order), reconstructed from the arrays."""
        out = np.zeros((self.n_paths, self.levels), dtype=np.int64)
        node = np.arange(self.n_paths)
        for level in range(self.levels - 1, -1, -1):
            out[:, level] = self.node_code[level][node]
            ptr = self.child_ptr[level]
            node = np.searchsorted(ptr, node, side="right") - 1  # parent index
        return out

    def nbytes(self) -> int:
        """Bytes of every array of the index."""
        arrays = [*self.node_code, *self.child_ptr, self.leaf_ptr, self.leaf_items, self.leaf_views]
        return int(sum(a.nbytes for a in arrays))

    def to(self, device: str | torch.device = "cpu") -> "TorchTrie":
        """What beam search reads, as tensors on ``device``: per level the children ranges and the
        sorted ``parent * K + code`` keys (the code is ``key % K``)."""
        return TorchTrie(
            self.n_codes,
            [torch.from_numpy(self.node_keys(level)).to(device) for level in range(self.levels)],
            [torch.from_numpy(p.astype(np.int64)).to(device) for p in self.child_ptr],
            self.n_paths,
            [bool((np.diff(p) == self.n_codes).all()) for p in self.child_ptr],
        )


@dataclass
class TorchTrie:
    """The arrays beam search reads, as int64 tensors on one device."""

    n_codes: int
    node_keys: List[torch.Tensor]
    child_ptr: List[torch.Tensor]
    n_paths: int
    #: per level: every node of the level above has all K children (node ``p``'s child ``c`` is ``p * K + c``)
    full_levels: List[bool] = field(default_factory=list)

    @property
    def levels(self) -> int:
        return len(self.node_keys)
