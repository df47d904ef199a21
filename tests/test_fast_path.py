"""train.fast: SASRec on fused SDPA computes RecBole's attention (same weights, same outputs up to
float rounding), loads the exact path's checkpoints, and leaves the other backbones alone."""
from __future__ import annotations

import torch

from cva_rec.backbones import build_backbone
from cva_rec.backbones.fast_sasrec import FastSASRec, SdpaMultiHeadAttention
from cva_rec.backbones.sasrec import TokenSASRec
from cva_rec.config import load_config
from cva_rec.training.trainer import precision_of
from tests.conftest import small_overrides


def _models(ml100k_data, tmp_path):
    out = {}
    for fast in (False, True):
        cfg = load_config(None, small_overrides(tmp_path, f"train.fast={str(fast).lower()}"))
        torch.manual_seed(0)
        out[fast] = build_backbone(cfg, ml100k_data.config, ml100k_data.train._dataset)
    return out


def test_fast_sasrec_equals_recboles_attention(ml100k_data, tmp_path):
    models = _models(ml100k_data, tmp_path)
    exact, fast = models[False], models[True]
    assert type(exact) is TokenSASRec and type(fast) is FastSASRec
    assert all(isinstance(layer.multi_head_attention, SdpaMultiHeadAttention) for layer in fast.trm_encoder.layer)
    # the same initial weights (the swap does not move the seeded stream) and the same parameter names
    sd_exact, sd_fast = exact.state_dict(), fast.state_dict()
    assert sd_exact.keys() == sd_fast.keys() and all(torch.equal(sd_exact[k], sd_fast[k]) for k in sd_exact)
    inter = ml100k_data.train.collate_fn(list(range(256)))
    seq, lengths = inter["item_id_list"], inter["item_length"]
    exact.eval(), fast.eval()
    with torch.no_grad():
        a, b = exact.forward(seq, lengths), fast.forward(seq, lengths)
    assert a.abs().max() > 0.1
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    # training mode without dropout: the loss and its gradients agree too
    for m in (exact, fast):
        m.train()
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
    la, lb = exact.calculate_loss(inter), fast.calculate_loss(inter)
    la.backward(), lb.backward()
    torch.testing.assert_close(lb, la, rtol=1e-5, atol=1e-5)
    ga = exact.trm_encoder.layer[0].multi_head_attention.query.weight.grad
    gb = fast.trm_encoder.layer[0].multi_head_attention.query.weight.grad
    torch.testing.assert_close(gb, ga, rtol=1e-4, atol=1e-6)


def test_fast_leaves_other_backbones_and_cpu_precision_alone(tmp_path):
    from cva_rec.backbones import TokenGRU4Rec, TokenNextItNet, fast_variant

    assert fast_variant(TokenSASRec) is FastSASRec
    assert fast_variant(TokenGRU4Rec) is TokenGRU4Rec and fast_variant(TokenNextItNet) is TokenNextItNet
    tr = load_config(None, small_overrides(tmp_path, "train.fast=true"))["train"]
    assert precision_of(tr) == "32-true"  # CPU: no autocast
