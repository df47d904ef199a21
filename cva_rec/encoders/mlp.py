"""``mlp``: masked mean over frames, then an MLP (the paper's MLP baseline)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.layers import gather_frames, GEGLU, check_choice, check_positive, content_input_dim, masked_mean
from cva_rec.encoders.registry import register_encoder
from cva_rec.errors import ConfigError
from cva_rec.features.content import ItemContent


@register_encoder("mlp")
class MlpEncoder(ItemEncoder):
    """mean(frames) -> [hidden layer -> Dropout] x (layers-1) -> Linear(output_dim).

    ``layers`` counts weight layers (>= 1; 1 = a single projection). ``hidden`` is the width
    of every hidden layer. ``activation``: ``gelu`` (Linear then GELU) or ``geglu`` (gated
    GELU, Linear to 2*hidden). The defaults (geglu, hidden 1536, 2 layers) are the paper's
    MLP: with 384-d input and output_dim 384 it has exactly Table 6's 1,772,928 parameters.
    """

    def __init__(self, n_items: int, output_dim: int, content: Optional[ItemContent] = None,
                 input_dim: Optional[int] = None, hidden: int = 1536, layers: int = 2, dropout: float = 0.0,
                 activation: str = "geglu"):
        super().__init__(n_items, output_dim, content)
        d_in = content_input_dim(content, input_dim, "mlp")
        check_positive(hidden=hidden, layers=layers)
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"mlp dropout must be in [0, 1), got {dropout}")
        activation = check_choice("mlp activation", activation, ("gelu", "geglu"))
        widths = [d_in] + [hidden] * (layers - 1) + [output_dim]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            if i == layers - 1:
                mods.append(nn.Linear(a, b))
            elif activation == "geglu":
                mods += [GEGLU(a, b), nn.Dropout(float(dropout))]
            else:
                mods += [nn.Linear(a, b), nn.GELU(), nn.Dropout(float(dropout))]
        self.net = nn.Sequential(*mods)

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        frames, mask, _ = gather_frames(self.content, item_ids)
        return self.net(masked_mean(frames, mask))
