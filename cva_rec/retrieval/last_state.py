"""The state at each user's last position of a pre-LN causal transformer, computed for inference only.

Recall reads one vector per user: the encoder's output at the user's last item. ``nn.TransformerEncoder``
computes every position of every layer, but in the last layer only the query at that position is ever
read; the other layers' outputs are needed everywhere (they are the last layer's keys and values).
So every layer but the last runs over all positions (causal attention), and the last layer runs its
queries, attention output and feed-forward block for one row per user. For one user over 50 items
this is also fewer small tensor ops than the encoder's fused inference path.

Same arithmetic as the encoder in eval mode (pre-LN: ``x + SA(LN1(x))``, then ``x + FF(LN2(x))``; no
dropout), a different summation order: equal to ``encoder(x, mask=causal)[user, last]`` to float
rounding (tested). Training keeps the encoder (dropout, every position's state).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def supported(encoder: nn.TransformerEncoder) -> bool:
    """Whether ``last_position_states`` reproduces this encoder: batch-first pre-LN layers with GELU or
    ReLU, no final norm inside the encoder."""
    return encoder.norm is None and all(
        isinstance(layer, nn.TransformerEncoderLayer) and layer.norm_first and layer.self_attn.batch_first
        and layer.self_attn._qkv_same_embed_dim and layer.self_attn.in_proj_bias is not None
        and layer.activation in (F.gelu, F.relu) for layer in encoder.layers)


def at_positions(x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """[U, T, H] rows ``last`` [U] -> [U, H] (one ``index_select`` of the flattened rows: cheaper than
    advanced indexing or ``gather``)."""
    n_users, t, hidden = x.shape
    rows = last if n_users == 1 else last + torch.arange(n_users, device=x.device) * t
    return x.reshape(n_users * t, hidden).index_select(0, rows)


def _norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:  # the module's arithmetic, called as a function
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _attention(layer: nn.TransformerEncoderLayer, h: torch.Tensor, last: torch.Tensor | None) -> torch.Tensor:
    """Self-attention of the normed input ``h`` [U, T, H]: causal at every position (``last`` None, -> [U, T, H])
    or only the query at ``last`` over the keys up to it (-> [U, H])."""
    attn = layer.self_attn
    n_users, t, hidden = h.shape
    heads = attn.num_heads
    w, b, out_w, out_b = attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight, attn.out_proj.bias
    if last is None:
        q, k, v = F.linear(h, w, b).view(n_users, t, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [U, heads, T, d]
        return F.linear(out.transpose(1, 2).reshape(n_users, t, hidden), out_w, out_b)
    q = F.linear(at_positions(h, last), w[:hidden], b[:hidden]).view(n_users, heads, 1, hidden // heads)
    k, v = F.linear(h, w[hidden:], b[hidden:]).view(n_users, t, 2, heads, hidden // heads).permute(2, 0, 3, 1, 4).unbind(0)
    mask = None
    if not bool((last == t - 1).all()):  # keys after a user's last item (padding) are not attended
        mask = (torch.arange(t, device=h.device)[None, :] <= last[:, None])[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [U, heads, 1, d]
    return F.linear(out.reshape(n_users, hidden), out_w, out_b)


def _feed_forward(layer: nn.TransformerEncoderLayer, x: torch.Tensor) -> torch.Tensor:
    hidden = layer.activation(F.linear(_norm(layer.norm2, x), layer.linear1.weight, layer.linear1.bias))
    return F.linear(hidden, layer.linear2.weight, layer.linear2.bias)


def last_position_states(encoder: nn.TransformerEncoder, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Layer inputs ``x`` [U, T, H] (embedded, left-aligned), ``last`` [U] each user's last position ->
    the encoder's causal output at those positions [U, H]. Inference only (no dropout)."""
    *body, final = encoder.layers
    for layer in body:
        x = x + _attention(layer, _norm(layer.norm1, x), None)
        x = x + _feed_forward(layer, x)
    x = x.contiguous()
    y = at_positions(x, last) + _attention(final, _norm(final.norm1, x), last)
    return y + _feed_forward(final, y)
