"""Item content aligned to a RecBole dataset's internal item ids, ready for encoders.

``ItemContent`` is what every content encoder reads: per-item frame (or segment)
features already ordered by RecBole's internal item index (row 0 is the padding
item and is all zeros with 0 frames). It is an ``nn.Module`` holding non-persistent
buffers: the features follow ``.to(device)`` once, are gathered by index on the device
(no per-step host->device copy), and are not written into model checkpoints.
"""
from __future__ import annotations

import torch
from torch import nn

from cva_rec.errors import FeatureStoreError


class ItemContent(nn.Module):
    def __init__(self, features: torch.Tensor, num_frames: torch.Tensor, timestamps: torch.Tensor | None = None):
        """features: [n_items, F, d] (float16/bfloat16/float32), num_frames: [n_items] int,
        timestamps: [n_items, F] float seconds (or frame positions) or None."""
        super().__init__()
        if features.dim() != 3:
            raise FeatureStoreError(f"item features must be [n_items, frames, dim], got shape {tuple(features.shape)}")
        n, f, _ = features.shape
        if num_frames.shape != (n,):
            raise FeatureStoreError(f"num_frames must be [{n}], got {tuple(num_frames.shape)}")
        if timestamps is None:
            timestamps = torch.arange(f, dtype=torch.float32).expand(n, f).clone()
        # checked in chunks: a float32 copy of the whole table would double the peak memory
        # (and, for memory-mapped content, undo the point of sharing it)
        step = max(1, (1 << 24) // max(1, f * features.shape[2]))
        for start in range(1, n, step):
            chunk = features[start:start + step].float()
            if not torch.isfinite(chunk).all():
                bad = (~torch.isfinite(chunk)).flatten(1).any(1).nonzero().flatten() + start
                raise FeatureStoreError(f"item features contain NaN/Inf for item indices {bad[:10].tolist()}")
        self.register_buffer("features", features, persistent=False)
        self.register_buffer("num_frames", num_frames.long().clamp(max=f), persistent=False)
        self.register_buffer("timestamps", timestamps.float(), persistent=False)
        # token stores (features/tokens.py): (frame slot, patch index; -1 = whole frame) per token
        self.register_buffer("positions", None, persistent=False)
        self.grid: tuple[int, int] | None = None

    def with_positions(self, positions: torch.Tensor, grid) -> "ItemContent":
        """Attach token positions [n_items, F, 2] (frame slot, patch index in ``grid``); returns self."""
        if tuple(positions.shape) != (self.n_items, self.max_frames, 2):
            raise FeatureStoreError(f"token positions must be [{self.n_items}, {self.max_frames}, 2], "
                                    f"got {tuple(positions.shape)}")
        self.positions = positions.to(torch.int16)  # compact: 4 bytes per token; made long on gather
        self.grid = (int(grid[0]), int(grid[1]))
        return self

    @property
    def n_items(self) -> int:
        return self.features.shape[0]

    @property
    def max_frames(self) -> int:
        return self.features.shape[1]

    @property
    def dim(self) -> int:
        return self.features.shape[2]

    def gather(self, item_ids: torch.Tensor, dtype: torch.dtype = torch.float32):
        """Flat item ids [n] -> (frames [n, F, d] in ``dtype``, mask [n, F] bool, timestamps [n, F])."""
        frames = self.features.index_select(0, item_ids).to(dtype)
        counts = self.num_frames.index_select(0, item_ids)
        mask = torch.arange(self.max_frames, device=item_ids.device)[None, :] < counts[:, None]
        return frames, mask, self.timestamps.index_select(0, item_ids)

    def gather_positions(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Flat item ids [n] -> token positions [n, F, 2] (token stores only)."""
        if self.positions is None:
            raise FeatureStoreError("this item content has no token positions (not from a token store)")
        return self.positions.index_select(0, item_ids).long()
