"""The contract every built-in encoder keeps, on real MiniLM title content.

Shapes and padding, variable frame counts, zero-frame items, gradients reach the encoder
and never the frozen features, and the all-items cache is invalidated by an optimiser step.
"""
from __future__ import annotations

import pytest
import torch

from cva_rec.encoders import build_encoder

from conftest import N_ITEMS, ZERO_FRAME_ITEM

SMALL = {"latent_dim": 64, "dim_head": 16}  # small widths keep the file fast; counts are tested elsewhere
SMALL_P = {**SMALL, "query_dim": 64}
CONFIGS = {
    "pooling_proj": {"name": "pooling"},
    "mlp": {"name": "mlp", "hidden": 128},
    "perceiver_io": {"name": "perceiver_io", "depth": 1, **SMALL_P},
    "perceiver_io_time": {"name": "perceiver_io", "depth": 1, "time_encoding": "sinusoidal", **SMALL_P},
    "perceiver_no_first_cross": {"name": "perceiver_io", "depth": 1, "ablation": "no_first_cross", **SMALL_P},
    "perceiver_no_cross": {"name": "perceiver_io", "depth": 1, "ablation": "no_cross", **SMALL_P},
    "perceiver_no_attention": {"name": "perceiver_io", "depth": 1, "ablation": "no_attention", **SMALL_P},
    "cva": {"name": "cva", "depth": 2, "repeats": 3, **SMALL},
    "cva_frames": {"name": "cva", "depth": 2, "attend": "frames", **SMALL},
    "cva_frames_learned": {"name": "cva", "depth": 1, "attend": "frames", "time_encoding": "learned", **SMALL},
    "id_content_sum": {"name": "id_content", "content_encoder": {"name": "cva", "depth": 1, **SMALL}},
    "id_content_concat": {"name": "id_content", "combine": "concat", "content_encoder": {"name": "mlp"}},
}
OUT = 64
N = N_ITEMS + 1


def _build(key, content):
    torch.manual_seed(0)
    return build_encoder(CONFIGS[key], N, OUT, content)


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_shapes_padding_and_zero_frames(key, content):
    enc = _build(key, content).eval()
    ids = torch.tensor([[0, 3, ZERO_FRAME_ITEM, 3], [1, 2, 0, N - 1]])
    out = enc(ids)
    assert out.shape == (2, 4, OUT)
    assert torch.isfinite(out).all()
    assert (out[ids == 0] == 0).all(), "padding id 0 must give the zero vector"
    assert torch.allclose(out[0, 1], out[0, 3]), "the same item must get the same vector"
    # variable frame counts: frames past an item's count must not matter
    assert content.num_frames[1:].unique().numel() > 2
    table = enc.all_items()
    assert table.shape == (N, OUT) and torch.isfinite(table).all()
    assert torch.allclose(table[ids[1]], out[1], atol=1e-5)


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_padded_frames_are_ignored(key, content):
    """Overwrite every padded frame slot with noise: real items' vectors must not change."""
    enc = _build(key, content).eval()
    ids = torch.arange(1, N)
    before = enc(ids)
    saved = content.features.clone()
    try:
        slots = torch.arange(content.max_frames)[None, :] >= content.num_frames[:, None]
        noisy = content.features.clone()
        noisy[slots] = torch.randn(int(slots.sum()), content.dim).half()
        content.features.copy_(noisy)
        after = enc(ids)
    finally:
        content.features.copy_(saved)
    assert torch.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_gradients_reach_encoder_not_features(key, content):
    enc = _build(key, content).train()
    frozen = content.features.clone()
    assert not any(b.requires_grad for b in content.buffers())
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-3)
    target = torch.randn(N - 1, OUT)
    ids = torch.arange(1, N)
    losses = []
    for _ in range(5):
        loss = ((enc(ids) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        grads = [p.grad for p in enc.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), "every parameter must receive a gradient"
        assert any(g.abs().sum() > 0 for g in grads)
        opt.step()
    assert losses[-1] < losses[0]
    assert torch.equal(content.features, frozen), "frozen features changed"
    assert not any(b.requires_grad for b in content.buffers())


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_all_items_cache_invalidated_by_step(key, content):
    enc = _build(key, content)
    enc.eval()
    with torch.no_grad():
        first = enc.all_items()
        assert enc.all_items() is first, "no step: the cached table is reused"
    enc.train()
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    enc(torch.arange(1, N)).pow(2).sum().backward()
    opt.step()
    enc.eval()
    with torch.no_grad():
        second = enc.all_items()
        fresh = torch.cat([enc(torch.arange(N))])
    assert second is not first and not torch.allclose(second, first)
    assert torch.allclose(second, fresh, atol=1e-5)
