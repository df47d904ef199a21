"""``pooling``: masked mean over an item's frames (the paper's Pooling baseline, 0 parameters)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.layers import gather_frames, content_input_dim, masked_mean
from cva_rec.encoders.registry import register_encoder
from cva_rec.features.content import ItemContent


@register_encoder("pooling")
class PoolingEncoder(ItemEncoder):
    """Mean of the valid frame vectors; a Linear projection only when widths differ.

    With ``input_dim == output_dim`` it has no parameters at all (Table 6: 0); otherwise
    the backbone's width cannot be met without one, so a Linear is added.
    Zero-frame items give the zero vector (projected: the bias).
    """

    def __init__(self, n_items: int, output_dim: int, content: Optional[ItemContent] = None,
                 input_dim: Optional[int] = None):
        super().__init__(n_items, output_dim, content)
        d_in = content_input_dim(content, input_dim, "pooling")
        self.proj = nn.Linear(d_in, output_dim) if d_in != output_dim else None

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        frames, mask, _ = gather_frames(self.content, item_ids)
        pooled = masked_mean(frames, mask)
        return pooled if self.proj is None else self.proj(pooled)
