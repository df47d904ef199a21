"""Building blocks shared by the content encoders (one definition each).

The attention and feed-forward blocks follow the Perceiver IO layout the CVA paper's
parameter counts were measured on: query projection and fused key/value projection
without bias, output projection with bias, pre-LayerNorm, and a gated GELU (GEGLU)
feed-forward of width x4. With latent width 256 and 4 heads of 64 one
:class:`SelfAttentionBlock` has exactly 1,052,160 parameters, the per-block increment
of the paper's Table 6.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from cva_rec.errors import ConfigError


def gather_frames(content, item_ids: torch.Tensor):
    """Frames of ``item_ids`` as float32 with padded slots zeroed, plus mask and timestamps.

    Zeroing makes attention over an item's padding slots (only ever used for zero-frame
    items, see :func:`keep_one_key`) independent of whatever a store left there.
    """
    frames, mask, times = content.gather(item_ids, torch.float32)
    return frames * mask.unsqueeze(-1).to(frames.dtype), mask, times


def masked_mean(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames: [n, F, d], mask [n, F] bool -> [n, d].

    Items with no valid frame give a zero vector (the count is clamped to 1, so no 0/0 NaN).
    """
    weights = mask.to(frames.dtype).unsqueeze(-1)
    total = (frames * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1.0)


class GEGLU(nn.Module):
    """Gated GELU: Linear(d_in, 2*d_out), then first half * gelu(second half)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.proj = nn.Linear(d_in, 2 * d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward: d -> GEGLU(d*mult) -> d (no norm; callers add pre-LN + residual)."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(dropout), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Multi-head (cross- or self-) attention on ``F.scaled_dot_product_attention``.

    Written here rather than using ``nn.MultiheadAttention`` because (a) the paper's
    counts need bias-free q/kv projections and a context width that differs from the
    query width, and (b) SDPA was as fast or faster on CPU at these shapes
    (``cva_rec/benchmarks/bench_attention_cpu.py``) and dispatches to flash/memory-efficient
    kernels on GPU.
    """

    def __init__(self, query_dim: int, context_dim: Optional[int] = None, heads: int = 4, dim_head: int = 64,
                 dropout: float = 0.0):
        super().__init__()
        context_dim = query_dim if context_dim is None else context_dim
        inner = heads * dim_head
        self.heads, self.dim_head, self.dropout = heads, dim_head, dropout
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, query_dim)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [n, Lq, query_dim], context [n, Lk, context_dim] (default x), key_mask [n, Lk] bool (True = attend).

        Rows whose key_mask is all False would give NaN; callers must leave at least one key.
        """
        context = x if context is None else context
        n, lq, _ = x.shape
        q = self.to_q(x).view(n, lq, self.heads, self.dim_head).transpose(1, 2)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        k = k.reshape(n, -1, self.heads, self.dim_head).transpose(1, 2)
        v = v.reshape(n, -1, self.heads, self.dim_head).transpose(1, 2)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(out.transpose(1, 2).reshape(n, lq, self.heads * self.dim_head))


class SelfAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + Attn(LN(x)); x + FFN(LN(x)) (Eq. 3 of the paper)."""

    def __init__(self, dim: int = 256, heads: int = 4, dim_head: int = 64, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads=heads, dim_head=dim_head, dropout=dropout)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), key_mask=key_mask)
        return x + self.ff(self.ff_norm(x))


class CrossAttentionBlock(nn.Module):
    """Perceiver cross-attention: queries x + Attn(LN(x), LN(context)) [+ FFN(LN(x)) if ``ff``]."""

    def __init__(self, query_dim: int, context_dim: int, heads: int = 1, dim_head: int = 64, ff: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        self.query_norm = nn.LayerNorm(query_dim)
        self.context_norm = nn.LayerNorm(context_dim)
        self.attn = Attention(query_dim, context_dim, heads=heads, dim_head=dim_head, dropout=dropout)
        self.ff_norm = nn.LayerNorm(query_dim) if ff else None
        self.ff = FeedForward(query_dim, 4, dropout) if ff else None

    def forward(self, x: torch.Tensor, context: torch.Tensor, key_mask: Optional[torch.Tensor] = None,
                residual: bool = True) -> torch.Tensor:
        out = self.attn(self.query_norm(x), self.context_norm(context), key_mask=key_mask)
        x = x + out if residual else out
        if self.ff is not None:
            x = x + self.ff(self.ff_norm(x))
        return x


class TimestampEncoding(nn.Module):
    """Frame time -> vector added to frame tokens.

    ``sinusoidal``: the Transformer's sin/cos of the timestamp (seconds or frame positions,
    whatever ``ItemContent.timestamps`` holds), no parameters. ``learned``: an embedding per
    frame *slot* (0..max_frames-1), for stores whose timestamps are not meaningful.
    """

    KINDS = ("sinusoidal", "learned")

    def __init__(self, kind: str, dim: int, max_frames: int, max_period: float = 10000.0):
        super().__init__()
        if kind not in self.KINDS:
            raise ConfigError(f"time_encoding must be one of {', '.join(self.KINDS)} or none, got {kind!r}")
        if kind == "sinusoidal" and dim % 2:
            raise ConfigError(f"sinusoidal time encoding needs an even width, got {dim}")
        self.kind, self.dim = kind, dim
        self.slots = nn.Embedding(max_frames, dim) if kind == "learned" else None
        if self.slots is not None:
            nn.init.normal_(self.slots.weight, std=0.02)
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, timestamps: torch.Tensor) -> torch.Tensor:
        """timestamps [n, F] -> [n, F, dim]."""
        if self.slots is not None:
            slots = torch.arange(timestamps.shape[1], device=timestamps.device)
            return self.slots(slots).expand(timestamps.shape[0], -1, -1)
        angles = timestamps.float().unsqueeze(-1) * self.freqs
        # scaled to unit norm so it shifts, not swamps, unit-scale frame features
        return torch.cat([angles.sin(), angles.cos()], dim=-1) * self.freqs.numel() ** -0.5


def build_time_encoding(kind: Optional[str], dim: int, max_frames: int) -> Optional[TimestampEncoding]:
    """``none``/None -> None, else a :class:`TimestampEncoding`."""
    if kind is None or str(kind).lower() == "none":
        return None
    return TimestampEncoding(str(kind).lower(), dim, max_frames)


def keep_one_key(mask: torch.Tensor) -> torch.Tensor:
    """A key mask with every all-False row set to all-True.

    Attention over zero keys is 0/0 (NaN). Zero-frame items have all-zero features, so
    letting them attend over their (zero) padding slots is harmless and keeps outputs finite;
    the masked mean that follows still ignores those slots.
    """
    empty = ~mask.any(dim=1, keepdim=True)
    return mask | empty


def content_input_dim(content, input_dim: Optional[int], encoder: str) -> int:
    """Resolve an encoder's ``input_dim`` option against the content's feature width."""
    if content is None:
        raise ConfigError(f"item encoder {encoder!r} needs item content (a feature store); none was given")
    if input_dim is not None and int(input_dim) != content.dim:
        raise ConfigError(
            f"item encoder {encoder!r}: input_dim={input_dim} but the feature store's vectors are {content.dim}-d; "
            f"remove input_dim or use a store of that width"
        )
    return content.dim


def check_choice(name: str, value: str, choices) -> str:
    """Validate a string option; ConfigError naming the allowed values."""
    v = str(value).lower()
    if v not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return v


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
