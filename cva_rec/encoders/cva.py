"""``cva``: the Compressed Video Aggregator (paper sec. 3.3, Eqs. 1-5).

    e = Linear(Dec(mean_r(Blocks^M(repeat_R(FFN(masked_mean_t(frames)))))))

* Eq. 1: masked mean over frames, then a GELU-gated projection (GEGLU) to the latent width.
* Eq. 2: the vector is repeated into R latents.
* Eq. 3: M pre-LN self-attention blocks (4 heads of 64, GEGLU feed-forward x4).
* Eq. 4: mean over the latents, then the decoder: a LayerNorm (``decoder_ffn: false``, what
  the paper's parameter counts and released code use) or LayerNorm + GEGLU FFN.
* Eq. 5: Linear to the backbone's width.

With 384-d features and ``output_dim`` 384 (the paper's "Query Dim."), the defaults have
1,052,160 parameters per block plus 296,320 outside them: M=4 gives 4,504,960, exactly
Table 6; M=1/2/8 are 384 below the table (the authors' count also includes an unused
384-d decoder query), i.e. within 0.03%.

**R changes cost, not output.** All R latents start equal; attention over identical
tokens is a uniform average of identical values, and every other op is per-token, so
the latents stay identical through every block and their mean equals any one of them.
R=1 is therefore the efficient setting (default); R>1 is kept only to reproduce the
paper's Table 18 cost measurements.

``attend: frames`` (beyond the paper) lets the blocks attend over the frame tokens
themselves: each frame is projected to the latent width, a timestamp encoding is added,
the blocks run with a key-padding mask, and a masked mean over frames replaces the mean
over latents. Content from a token store (codec patch tokens, :mod:`cva_rec.features.tokens`)
is read the same way, tokens in place of frames, plus a learned patch-position embedding.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.layers import (GEGLU, SelfAttentionBlock, build_time_encoding, check_choice, check_positive,
                                     gather_frames,
                                     content_input_dim, keep_one_key, masked_mean)
from cva_rec.encoders.patch_position import build_patch_position
from cva_rec.encoders.registry import register_encoder
from cva_rec.errors import ConfigError
from cva_rec.features.content import ItemContent


@register_encoder("cva")
class CvaEncoder(ItemEncoder):
    def __init__(self, n_items: int, output_dim: int, content: Optional[ItemContent] = None,
                 input_dim: Optional[int] = None, depth: int = 4, repeats: int = 1, latent_dim: int = 256,
                 heads: int = 4, dim_head: int = 64, ff_mult: int = 4, dropout: float = 0.0,
                 attend: str = "latents", time_encoding: Optional[str] = None, decoder_ffn: bool = False):
        """depth: M blocks; repeats: R latents (``attend: latents`` only); attend: ``latents`` (paper) or
        ``frames``; time_encoding: ``sinusoidal`` (default for frames), ``learned`` or ``none``
        (frames only); decoder_ffn: LayerNorm + GEGLU FFN after the mean instead of LayerNorm only."""
        super().__init__(n_items, output_dim, content)
        d_in = content_input_dim(content, input_dim, "cva")
        check_positive(depth=depth, repeats=repeats, latent_dim=latent_dim, heads=heads, dim_head=dim_head,
                       ff_mult=ff_mult)
        self.attend = check_choice("cva attend", attend, ("latents", "frames"))
        if self.attend == "frames" and repeats != 1:
            raise ConfigError("cva: repeats applies to attend=latents only; with attend=frames the frames are the tokens")
        if self.attend == "latents" and time_encoding not in (None, "none"):
            raise ConfigError("cva: time_encoding applies to attend=frames only (attend=latents pools the frames first)")
        self.repeats = repeats
        self.in_proj = GEGLU(d_in, latent_dim)  # Eq. 1 (applied per frame when attend=frames)
        self.time_encoding = (build_time_encoding(time_encoding or "sinusoidal", latent_dim, content.max_frames)
                              if self.attend == "frames" else None)
        # token-store content: where each patch token sits in its frame (frames mode only)
        self.patch_position = build_patch_position(content, latent_dim) if self.attend == "frames" else None
        self.blocks = nn.ModuleList(SelfAttentionBlock(latent_dim, heads, dim_head, ff_mult, dropout)
                                    for _ in range(depth))
        self.decoder = (nn.Sequential(nn.LayerNorm(latent_dim), GEGLU(latent_dim, latent_dim)) if decoder_ffn
                        else nn.LayerNorm(latent_dim))  # Eq. 4
        self.out = nn.Linear(latent_dim, output_dim)  # Eq. 5

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        frames, mask, times = gather_frames(self.content, item_ids)
        if self.attend == "latents":
            latent = self.in_proj(masked_mean(frames, mask))  # [n, D]
            x = latent.unsqueeze(1).expand(-1, self.repeats, -1)  # Eq. 2; no copy until the first op
            for block in self.blocks:
                x = block(x)
            pooled = x.mean(dim=1)
        else:
            x = self.in_proj(frames)
            if self.time_encoding is not None:
                x = x + self.time_encoding(times)
            if self.patch_position is not None:
                x = x + self.patch_position(self.content.gather_positions(item_ids))
            keys = keep_one_key(mask)
            for block in self.blocks:
                x = block(x, key_mask=keys)
            pooled = masked_mean(x, mask)
        return self.out(self.decoder(pooled))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, attend={self.attend}, repeats={self.repeats}"
