"""The opt-in fast path's SASRec (``train.fast: true``): RecBole's attention on fused SDPA.

:class:`SdpaMultiHeadAttention` computes what RecBole's ``MultiHeadAttention`` computes
(softmax(QK^T / sqrt(d) + mask) V, dropout on the probabilities, dense, dropout, residual,
LayerNorm) with ``torch.nn.functional.scaled_dot_product_attention``, which dispatches to fused
kernels (flash / memory-efficient on CUDA, bf16 included). Same submodules and parameter names,
so checkpoints load either way. Results equal the exact path up to float rounding in eval mode.
On CPU in training with attention dropout, SDPA would draw its mask with ``bernoulli_`` (the slow
part, see ``fast_path.py``), so there the same formula is written out and the probabilities go
through the module's :class:`~cva_rec.backbones.fast_path.QuantizedDropout`; the fused CUDA
kernels draw their own masks. Either way a fast run is another draw of the same model: metrics
within seed noise, not bit for bit. The exact path (:class:`~cva_rec.backbones.sasrec.TokenSASRec`)
stays the default.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from recbole.model.layers import MultiHeadAttention

from cva_rec.backbones.fast_path import FastBackbone, quantize_dropouts
from cva_rec.backbones.sasrec import TokenSASRec


class SdpaMultiHeadAttention(MultiHeadAttention):
    def forward(self, input_tensor, attention_mask):
        b, n, _ = input_tensor.shape

        def heads(x):  # [B, N, H*d] -> [B, H, N, d]
            return x.view(b, n, self.num_attention_heads, self.attention_head_size).transpose(1, 2)

        q, k, v = heads(self.query(input_tensor)), heads(self.key(input_tensor)), heads(self.value(input_tensor))
        mask = attention_mask.to(q.dtype)
        if self.training and self.attn_dropout.p > 0 and q.device.type == "cpu":
            probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.attention_head_size) + mask, dim=-1)
            context = self.attn_dropout(probs) @ v
        else:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                     dropout_p=self.attn_dropout.p if self.training else 0.0)
        hidden = self.out_dropout(self.dense(context.transpose(1, 2).reshape(b, n, self.all_head_size)))
        return self.LayerNorm(hidden + input_tensor)


class FastSASRec(FastBackbone, TokenSASRec):
    """TokenSASRec whose transformer layers attend through :class:`SdpaMultiHeadAttention`, with the
    fast path's dropout and optional ``torch.compile`` (:class:`~cva_rec.backbones.fast_path.FastBackbone`)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        rng = torch.get_rng_state()  # building the new modules must not shift the seeded stream
        for layer in self.trm_encoder.layer:
            old = layer.multi_head_attention
            new = SdpaMultiHeadAttention(config["n_heads"], config["hidden_size"], config["hidden_dropout_prob"],
                                         config["attn_dropout_prob"], config["layer_norm_eps"])
            new.load_state_dict(old.state_dict())  # RecBole's initialised weights, unchanged
            quantize_dropouts(new)
            layer.multi_head_attention = new
        torch.set_rng_state(rng)
