"""Where a token sits in its frame: a learned embedding of the patch index, for token-store content.

Token stores (:mod:`cva_rec.features.tokens`) hold codec-selected patches of several frames per
item; the timestamp encoding already says *when* a token is, this says *where* (row-major index
in the frame encoder's patch grid; index -1, a whole-frame token, has its own row). Encoders add
it only when their content carries positions, so frame stores behave exactly as before.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class PatchPositionEncoding(nn.Module):
    def __init__(self, grid: tuple[int, int], dim: int):
        super().__init__()
        self.grid = tuple(grid)
        self.table = nn.Embedding(grid[0] * grid[1] + 1, dim)  # row 0: whole-frame token (index -1)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """positions [n, T, 2] (frame slot, patch index) -> [n, T, dim]."""
        return self.table(positions[..., 1] + 1)


def build_patch_position(content, dim: int) -> Optional[PatchPositionEncoding]:
    """An encoding for content from a token store, None for frame content."""
    if getattr(content, "positions", None) is None:
        return None
    return PatchPositionEncoding(content.grid, dim)
