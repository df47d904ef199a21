"""Pooling: the masked mean itself, zero parameters at equal widths, projection otherwise."""
from __future__ import annotations

import torch

from cva_rec.encoders import build_encoder

from conftest import N_ITEMS, ZERO_FRAME_ITEM

N = N_ITEMS + 1


def test_masked_mean_of_real_frames(content):
    enc = build_encoder({"name": "pooling"}, N, content.dim, content)
    assert sum(p.numel() for p in enc.parameters()) == 0  # Table 6: 0
    out = enc(torch.arange(N))
    for i in (1, 2, 3, N - 1):
        k = int(content.num_frames[i])
        assert torch.allclose(out[i], content.features[i, :k].float().mean(0), atol=1e-6)
    assert (out[0] == 0).all() and (out[ZERO_FRAME_ITEM] == 0).all()


def test_projection_only_when_widths_differ(content):
    enc = build_encoder({"name": "pooling"}, N, 64, content)
    assert enc.proj is not None and enc.proj.in_features == content.dim
    assert enc(torch.tensor([1, 2])).shape == (2, 64)
