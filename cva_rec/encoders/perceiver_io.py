"""``perceiver_io``: the Perceiver IO baseline of the CVA paper (App. B) and its Table 6 ablations.

Default (``ablation: none``), with 384-d frames and ``output_dim`` 384 this has exactly the
paper's 5,321,344 parameters:

    latents [32, 256] --cross-attn (1 head) over frames + GEGLU FFN--> 4 self-attn blocks (4 heads)
    --> a learned query [1, 384] cross-attends to the latents --> Linear(384, output_dim)

Ablations (what each removes; parameter counts at 384 -> 384, paper in brackets):

* ``no_first_cross``: the encoder cross-attention (and its FFN and the learned latents) is
  replaced by masked mean over frames -> GEGLU projection, repeated to ``num_latents``;
  the decoder cross-attention stays. 4,637,568 [4,637,568].
* ``no_cross``: additionally the decoder cross-attention and query are replaced by a mean
  over latents -> LayerNorm -> Linear. This is CVA with R = 32. 4,504,960 [4,504,960].
* ``no_attention``: additionally each self-attention block is replaced by an MLP-Mixer
  block (token-mixing MLP over the latents + GEGLU channel MLP). 829,184 [829,568; the
  authors' count includes an unused 384-d query].

Token-store content (codec patch tokens, :mod:`cva_rec.features.tokens`): the encoder
cross-attends to the tokens, with a learned patch-position embedding added (``ablation: none``).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.layers import (GEGLU, CrossAttentionBlock, SelfAttentionBlock, build_time_encoding, check_choice,
                                     gather_frames,
                                     check_positive, content_input_dim, keep_one_key, masked_mean)
from cva_rec.encoders.patch_position import build_patch_position
from cva_rec.encoders.registry import register_encoder
from cva_rec.errors import ConfigError
from cva_rec.features.content import ItemContent

ABLATIONS = ("none", "no_first_cross", "no_cross", "no_attention")


class LatentMixer(nn.Module):
    """Attention-free stand-in for a self-attention block: token-mixing MLP, then GEGLU channel MLP."""

    def __init__(self, num_latents: int, dim: int):
        super().__init__()
        self.token_norm = nn.LayerNorm(num_latents)
        self.token_mix = nn.Linear(num_latents, num_latents)
        self.channel_norm = nn.LayerNorm(dim)
        self.channel_mix = GEGLU(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + F.gelu(self.token_mix(self.token_norm(x.transpose(1, 2)))).transpose(1, 2)
        return x + self.channel_mix(self.channel_norm(x))


@register_encoder("perceiver_io")
class PerceiverIoEncoder(ItemEncoder):
    def __init__(self, n_items: int, output_dim: int, content: Optional[ItemContent] = None,
                 input_dim: Optional[int] = None, ablation: str = "none", depth: int = 4, num_latents: int = 32,
                 latent_dim: int = 256, cross_heads: int = 1, self_heads: int = 4, dim_head: int = 64,
                 query_dim: int = 384, dropout: float = 0.0, time_encoding: Optional[str] = None):
        """time_encoding: ``sinusoidal``/``learned`` added to the frames the encoder cross-attends to
        (``ablation: none`` only; default none, as in the paper)."""
        super().__init__(n_items, output_dim, content)
        d_in = content_input_dim(content, input_dim, "perceiver_io")
        check_positive(depth=depth, num_latents=num_latents, latent_dim=latent_dim, cross_heads=cross_heads,
                       self_heads=self_heads, dim_head=dim_head, query_dim=query_dim)
        self.ablation = check_choice("perceiver_io ablation", ablation, ABLATIONS)
        self.num_latents = num_latents
        if time_encoding not in (None, "none") and self.ablation != "none":
            raise ConfigError("perceiver_io: time_encoding needs ablation=none (the ablations pool the frames first)")
        if self.ablation == "none":
            self.latents = nn.Parameter(torch.randn(num_latents, latent_dim) * 0.02)
            self.time_encoding = build_time_encoding(time_encoding, d_in, content.max_frames)
            self.patch_position = build_patch_position(content, d_in)  # token-store content only
            self.encoder_cross = CrossAttentionBlock(latent_dim, d_in, cross_heads, dim_head, ff=True, dropout=dropout)
        else:
            self.in_proj = GEGLU(d_in, latent_dim)
        if self.ablation == "no_attention":
            self.blocks = nn.ModuleList(LatentMixer(num_latents, latent_dim) for _ in range(depth))
        else:
            self.blocks = nn.ModuleList(SelfAttentionBlock(latent_dim, self_heads, dim_head, 4, dropout)
                                        for _ in range(depth))
        if self.ablation in ("none", "no_first_cross"):
            self.query = nn.Parameter(torch.randn(1, query_dim) * 0.02)
            self.decoder_cross = CrossAttentionBlock(query_dim, latent_dim, cross_heads, dim_head, ff=False,
                                                     dropout=dropout)
            self.out = nn.Linear(query_dim, output_dim)
        else:
            self.decoder_norm = nn.LayerNorm(latent_dim)
            self.out = nn.Linear(latent_dim, output_dim)

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        frames, mask, times = gather_frames(self.content, item_ids)
        n = frames.shape[0]
        if self.ablation == "none":
            if self.time_encoding is not None:
                frames = frames + self.time_encoding(times)
            if self.patch_position is not None:
                frames = frames + self.patch_position(self.content.gather_positions(item_ids))
            x = self.latents.unsqueeze(0).expand(n, -1, -1)
            x = self.encoder_cross(x, frames, key_mask=keep_one_key(mask))
        else:
            x = self.in_proj(masked_mean(frames, mask)).unsqueeze(1).expand(-1, self.num_latents, -1)
        for block in self.blocks:
            x = block(x)
        if self.ablation in ("none", "no_first_cross"):
            query = self.query.unsqueeze(0).expand(n, -1, -1)
            # Perceiver IO's decoder has no residual from the query: the output is read from the latents.
            return self.out(self.decoder_cross(query, x, residual=False).squeeze(1))
        return self.out(self.decoder_norm(x.mean(dim=1)))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ablation={self.ablation}, num_latents={self.num_latents}"
