"""Token store: item -> a variable number of (frame, patch position, vector) tokens, padded + masked.

A token store is an ordinary feature store (``features.npy`` [n_items, max_tokens, dim],
``num_frames.npy`` = tokens per item, ``timestamps.npy`` = the time of each token's frame) plus
one file::

    token_positions.npy  [n_items, max_tokens, 2] int16: (frame slot within the item, patch index
                         in the frame encoder's grid, row-major; -1 = a whole-frame token); 0 on padding

and ``meta.json["tokens"] = {"grid": [rows, cols], ...}``. Everything that reads frames reads
tokens unchanged (the token axis is the frame axis, the mask comes from the counts); encoders
that know about positions (CVA ``attend: frames``, Perceiver IO) add a patch-position
embedding. The positions file is written into ``<path>.partial/`` before each row is marked
done, so the store stays atomic and resumable exactly like a feature store.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from cva_rec.errors import FeatureStoreError
from cva_rec.features.content import ItemContent
from cva_rec.features.store import FeatureStore, FeatureStoreWriter, open_store
from cva_rec.io import atomic_create, load_numpy

POSITIONS_FILE = "token_positions.npy"
TOKENS_KEY = "tokens"


class TokenStoreWriter:
    """A :class:`FeatureStoreWriter` whose rows also carry each token's (frame slot, patch index)."""

    def __init__(self, path: str | os.PathLike, item_ids: Sequence[str], max_tokens: int, dim: int,
                 grid: Sequence[int], dtype: str = "float16", metadata: Mapping[str, Any] | None = None, *,
                 overwrite: bool = False):
        grid = [int(g) for g in grid]
        if len(grid) != 2 or min(grid) < 1:
            raise FeatureStoreError(f"{path}: token grid must be [rows, cols] >= 1, got {grid}")
        meta = {**dict(metadata or {}), TOKENS_KEY: {
            "grid": grid, "positions_file": POSITIONS_FILE,
            "positions": "(frame slot within the item, patch index row-major in the grid; -1 = whole frame)"}}
        self.store = FeatureStoreWriter(path, item_ids, max_tokens, dim, dtype, meta, overwrite=overwrite)
        self.grid = grid
        self.partial = self.store.partial
        pos_file = self.partial / POSITIONS_FILE
        shape = (self.store.n_items, self.store.max_frames, 2)
        if not pos_file.exists():  # fresh partial (or killed before this file appeared: no row is done yet)
            atomic_create(pos_file, lambda tmp: np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=shape).flush())
        self._positions = np.lib.format.open_memmap(pos_file, mode="r+")
        if self._positions.shape != shape or self._positions.dtype != np.int16:
            raise FeatureStoreError(f"cannot resume {self.partial}: {POSITIONS_FILE} is {self._positions.dtype}"
                                    f"{list(self._positions.shape)}, expected int16{list(shape)}")

    # the feature-store side, unchanged
    @property
    def max_frames(self) -> int:
        return self.store.max_frames

    @property
    def dim(self) -> int:
        return self.store.dim

    def pending_rows(self) -> np.ndarray:
        return self.store.pending_rows()

    def write(self, rows, features: np.ndarray, num_tokens, timestamps: np.ndarray, positions: np.ndarray) -> None:
        """As :meth:`FeatureStoreWriter.write`, plus positions [b, T', 2] (frame slot, patch index)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        counts = np.asarray(num_tokens, dtype=np.int64).reshape(-1)
        pos = np.asarray(positions)
        b, t_in = rows.shape[0], np.asarray(features).shape[1] if np.asarray(features).ndim == 3 else -1
        if pos.shape != (b, t_in, 2):
            raise FeatureStoreError(f"{self.store.path}: positions must be [{b}, {t_in}, 2], got {list(pos.shape)}")
        valid = np.arange(t_in)[None, :] < counts[:, None]
        if b and ((pos[..., 1][valid] < -1).any() or (pos[..., 1][valid] >= self.grid[0] * self.grid[1]).any()):
            raise FeatureStoreError(f"{self.store.path}: patch indices must be in [-1, {self.grid[0] * self.grid[1]})")
        out = np.zeros((b, self.max_frames, 2), dtype=np.int16)
        out[:, :t_in] = np.where(valid[:, :, None], pos, 0)
        self._positions[rows] = out
        self._positions.flush()  # before the store marks the rows done
        self.store.write(rows, features, counts, timestamps)

    def finalize(self) -> Path:
        self._positions.flush()
        with open(self.partial / POSITIONS_FILE, "rb+") as f:
            os.fsync(f.fileno())
        self._positions = None
        return self.store.finalize()  # renames the partial folder, positions file included


@dataclass
class TokenStore:
    """A finished token store: the feature store plus the memory-mapped positions."""

    store: FeatureStore
    positions: np.ndarray  # [n_items, max_tokens, 2] int16
    grid: tuple[int, int]

    @property
    def path(self) -> Path:
        return self.store.path

    def get(self, item_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tokens [n, dim] float32, timestamps [n], positions [n, 2]) of one item."""
        feats, stamps = self.store.get(item_id)
        return feats, stamps, np.array(self.positions[self.store.row_of(item_id), :len(feats)], dtype=np.int64)


def is_token_store(store: FeatureStore) -> bool:
    return isinstance(store.meta.get(TOKENS_KEY), dict)


def open_token_store(path: str | os.PathLike, *, validate: bool | str = True) -> TokenStore:
    """Open a token store (a feature store with ``token_positions.npy``); FeatureStoreError otherwise."""
    store = open_store(path, validate=validate)
    if not is_token_store(store):
        raise FeatureStoreError(f"{store.path} is a feature store without tokens (no 'tokens' in meta.json)")
    grid = tuple(int(g) for g in store.meta[TOKENS_KEY]["grid"])
    positions = load_numpy(store.path / POSITIONS_FILE, "token positions", mmap_mode="r", error=FeatureStoreError)
    expected = (len(store), store.max_frames, 2)
    if positions.shape != expected or positions.dtype != np.int16:
        raise FeatureStoreError(f"{store.path / POSITIONS_FILE}: {positions.dtype}{list(positions.shape)}, "
                                f"expected int16{list(expected)}")
    return TokenStore(store, positions, grid)


def attach_token_positions(content: ItemContent, store: FeatureStore, item_tokens: Sequence[str]) -> ItemContent:
    """Give ``content`` (aligned from ``store`` to ``item_tokens``) its token positions when ``store`` is a
    token store; frame stores are returned unchanged. Items without a row get zero positions."""
    if not is_token_store(store):
        return content
    tokens = open_token_store(store.path, validate=False)
    k = content.max_frames
    positions = torch.zeros((content.n_items, k, 2), dtype=torch.int16)
    rows = store.rows_of(item_tokens[1:])
    ids = [i for i, t in enumerate(item_tokens) if i > 0 and t in rows]
    if ids:
        src = np.asarray([rows[item_tokens[i]] for i in ids], dtype=np.int64)
        order = np.argsort(src, kind="stable")  # ascending rows: sequential memmap reads
        positions[torch.as_tensor(np.asarray(ids)[order])] = torch.from_numpy(
            np.asarray(tokens.positions[src[order], :k], dtype=np.int16))
    return content.with_positions(positions, tokens.grid)


def align_tokens_to_items(tokens: TokenStore, item_tokens: Sequence[str], **kwargs) -> ItemContent:
    """:func:`~cva_rec.features.align.align_to_items` of the tokens, with their positions attached."""
    from cva_rec.features.align import align_to_items

    return attach_token_positions(align_to_items(tokens.store, item_tokens, **kwargs), tokens.store, item_tokens)
