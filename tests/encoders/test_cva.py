"""CVA: paper parameter counts, R-invariance (proved numerically), dead q/k weights, attend=frames."""
from __future__ import annotations

import pytest
import torch

from cva_rec.encoders import CvaEncoder, build_encoder
from cva_rec.errors import ConfigError

from conftest import N_ITEMS

N = N_ITEMS + 1
# Table 6 of the paper (CVA, 384-d DINOv3 frames -> 384-d item vectors)
PAPER = {1: 1_348_864, 2: 2_401_024, 4: 4_504_960, 8: 8_713_984}


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("depth", sorted(PAPER))
def test_parameter_count_matches_paper(depth, content):
    enc = build_encoder({"name": "cva", "depth": depth}, N, 384, content)
    ours = n_params(enc)
    print(f"CVA M={depth}: ours {ours:,} paper {PAPER[depth]:,} ({(ours - PAPER[depth]) / PAPER[depth]:+.4%})")
    assert abs(ours - PAPER[depth]) / PAPER[depth] < 0.01
    assert n_params(enc.blocks[0]) == 1_052_160  # 4 heads of 64, GEGLU x4, pre-LN


def test_repeats_change_cost_not_output(content):
    """All R latents start equal, so attention is uniform over identical tokens: R=1 == R=8."""
    torch.manual_seed(0)
    one = build_encoder({"name": "cva", "depth": 4, "repeats": 1}, N, 64, content).eval()
    eight = build_encoder({"name": "cva", "depth": 4, "repeats": 8}, N, 64, content).eval()
    eight.load_state_dict(one.state_dict())  # same weights: R adds no parameters
    assert n_params(one) == n_params(eight)
    ids = torch.arange(N)
    a, b = one(ids), eight(ids)
    print(f"max |R=1 - R=8| = {(a - b).abs().max():.2e}")
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    # a non-trivial check: the encoder is not constant across items
    assert (a[1:] - a[1:].mean(0)).abs().max() > 1e-3


def test_identical_latents_make_query_key_weights_dead(content):
    """Consequence of the same property: to_q and the key half of to_kv never get a gradient."""
    enc = build_encoder({"name": "cva", "depth": 2, "repeats": 4}, N, 64, content).train()
    enc(torch.arange(1, N)).pow(2).sum().backward()
    attn = enc.blocks[0].attn
    inner = attn.to_q.out_features
    assert attn.to_q.weight.grad.abs().max() < 1e-6
    assert attn.to_kv.weight.grad[:inner].abs().max() < 1e-6
    assert attn.to_kv.weight.grad[inner:].abs().max() > 1e-6  # values still learn


def test_attend_frames_uses_order_and_timestamps(content):
    torch.manual_seed(0)
    enc = build_encoder({"name": "cva", "depth": 2, "attend": "frames"}, N, 64, content).eval()
    assert n_params(enc) == n_params(build_encoder({"name": "cva", "depth": 2}, N, 64, content))  # sinusoidal: 0 params
    ids = torch.arange(1, N)
    base = enc(ids)
    saved = content.timestamps.clone()
    try:
        content.timestamps.mul_(3.0)
        moved = enc(ids)
    finally:
        content.timestamps.copy_(saved)
    multi = content.num_frames[1:] > 1
    assert not torch.allclose(base[multi], moved[multi]), "timestamps must reach the output"
    single = content.num_frames[1:] == 1
    if single.any():  # one frame attends only to itself: only its own time encoding matters
        assert torch.isfinite(moved[single]).all()


def test_frames_differs_from_latents(content):
    """attend=frames is a different function than the paper's pooled latents, on the same weights."""
    torch.manual_seed(0)
    lat = build_encoder({"name": "cva", "depth": 2}, N, 64, content).eval()
    frm = build_encoder({"name": "cva", "depth": 2, "attend": "frames", "time_encoding": "none"}, N, 64, content).eval()
    frm.load_state_dict(lat.state_dict())
    ids = torch.arange(1, N)
    single = content.num_frames[1:] == 1
    a, b = lat(ids), frm(ids)
    # one-frame items: frames mode sees one token, latents mode one pooled token -> identical
    if single.any():
        assert torch.allclose(a[single], b[single], atol=1e-5)
    assert not torch.allclose(a[~single], b[~single], atol=1e-4)


@pytest.mark.parametrize("bad", [{"attend": "everything"}, {"repeats": 0}, {"depth": -1},
                                 {"attend": "frames", "repeats": 4}, {"time_encoding": "sinusoidal"},
                                 {"attend": "frames", "time_encoding": "rotary"}, {"input_dim": 512}, {"depht": 4}])
def test_bad_options(bad, content):
    with pytest.raises(ConfigError):
        build_encoder({"name": "cva", **bad}, N, 64, content)


def test_needs_content():
    with pytest.raises(ConfigError, match="needs item content"):
        CvaEncoder(N, 64, None)
