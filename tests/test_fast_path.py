"""train.fast: SASRec on fused SDPA computes RecBole's attention (same weights, same outputs up to
float rounding) and loads the exact path's checkpoints; the fast dropout draws Bernoulli(p) masks;
the compiled forward equals the eager one; bf16 on a CPU that has it; and a fast run's metrics stay
within seed noise of the exact path's."""
from __future__ import annotations

import pytest
import torch

from cva_rec.backbones import build_backbone
from cva_rec.backbones.fast_path import QuantizedDropout
from cva_rec.backbones.fast_sasrec import FastSASRec, SdpaMultiHeadAttention
from cva_rec.backbones.fast_variants import FastGRU4Rec, FastNextItNet
from cva_rec.backbones.sasrec import TokenSASRec
from cva_rec.config.schema import load_config
from cva_rec.training.trainer import cpu_has_bf16, precision_of
from tests.conftest import small_overrides


def _models(ml100k_data, tmp_path, *extra):
    out = {}
    for fast in (False, True):
        cfg = load_config(None, small_overrides(tmp_path, f"train.fast={str(fast).lower()}", *extra))
        torch.manual_seed(0)
        out[fast] = build_backbone(cfg, ml100k_data.config, ml100k_data.train._dataset)
    return out


def test_fast_sasrec_equals_recboles_attention(ml100k_data, tmp_path):
    models = _models(ml100k_data, tmp_path, "train.compile=false")
    exact, fast = models[False], models[True]
    assert type(exact) is TokenSASRec and type(fast) is FastSASRec
    assert all(isinstance(layer.multi_head_attention, SdpaMultiHeadAttention) for layer in fast.trm_encoder.layer)
    assert all(type(m) is QuantizedDropout for m in fast.modules() if isinstance(m, torch.nn.Dropout))
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


@pytest.mark.parametrize("p", [0.5, 0.3, 0.1])
def test_quantized_dropout_is_bernoulli(p):
    drop = QuantizedDropout(p)
    torch.manual_seed(0)
    x = torch.ones(400, 1001)  # odd size: the last 16-bit word of the last draw is unused
    y = drop(x)
    kept = y != 0
    # 400,400 draws: the kept share is within 5 standard deviations of 1 - p, and kept values are scaled
    n = x.numel()
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * (p * (1 - p) / n) ** 0.5
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    # no structure across positions (the two halves of one 32-bit draw are independent)
    pairs = kept.reshape(-1)[: n - n % 2].view(-1, 2).float()
    assert abs((pairs[:, 0] * pairs[:, 1]).mean().item() - (1 - p) ** 2) < 0.01
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # seeded
    drop.eval()
    assert drop(x) is x


def test_compile_cache_folder(tmp_path, monkeypatch):
    """Inductor's cache goes to ~/.cache/cva_rec/inductor (XDG_CACHE_HOME honoured) unless the user chose one."""
    from cva_rec.backbones.fast_path import use_compile_cache

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_compile_cache() == tmp_path / "mine"
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert use_compile_cache() == tmp_path / "xdg" / "cva_rec" / "inductor"
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "xdg" / "cva_rec" / "inductor")


def test_fast_variants_precision_and_compiled_forward(tmp_path, monkeypatch):
    from torch._dynamo.utils import counters

    from cva_rec.backbones import TokenGRU4Rec, TokenNARM, TokenNextItNet, fast_variant

    assert fast_variant(TokenSASRec) is FastSASRec and fast_variant(TokenGRU4Rec) is FastGRU4Rec
    assert fast_variant(TokenNextItNet) is FastNextItNet and fast_variant(TokenNARM) is TokenNARM
    tr = load_config(None, small_overrides(tmp_path, "train.fast=true"))["train"]
    assert precision_of(tr) == ("bf16-mixed" if cpu_has_bf16() else "32-true")
    assert precision_of({**tr, "precision": "16-mixed"}) == "16-mixed"  # an explicit choice is kept
    assert precision_of({**tr, "fast": False}) == "32-true"
    # torch.compile: the compiled forward gives the eager forward's outputs (NextItNet: the quickest to compile;
    # one block of its two dilations instead of RecBole's five: the same layers, a fifth of the graph to compile)
    from cva_rec.data.dataset import build_data

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # an empty compile cache of this test's own
    cache = tmp_path / "xdg" / "cva_rec" / "inductor"
    models, data = {}, None
    for key, compiled in (("eager", False), ("compiled", True), ("second run", True)):
        cfg = load_config(None, small_overrides(tmp_path, "model.name=NextItNet", "model.block_num=1", "dataset.engine=streaming", "train.fast=true",
                                                f"train.compile={str(compiled).lower()}"))
        data = data or build_data(cfg)  # NextItNet's own RecBole config
        torch.manual_seed(0)
        models[key] = build_backbone(cfg, data.config, data.train._dataset).eval()
    assert models["compiled"]._compiled_forward is not None and models["eager"]._compiled_forward is None
    assert models["compiled"].compiled and not models["eager"].compiled  # what the progress's CompileTimer reads
    assert models["compiled"].compile_cache == cache
    inter = data.train.collate_fn(list(range(64)))
    counters.clear()
    with torch.no_grad():
        a = models["eager"].forward(inter["item_id_list"], inter["item_length"])
        b = models["compiled"].forward(inter["item_id_list"], inter["item_length"])
        assert counters["inductor"]["fxgraph_cache_miss"] >= 1 and not counters["inductor"]["fxgraph_cache_hit"]
        assert any((cache / "fxgraph").rglob("*")), "the compiled graph is not in the cva_rec cache folder"
        # another model of the same shapes in a fresh compiler state (a later run): its kernels come from the cache
        torch._dynamo.reset()
        c = models["second run"].forward(inter["item_id_list"], inter["item_length"])
        assert counters["inductor"]["fxgraph_cache_hit"] >= 1
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c, b)


def test_fast_run_metrics_within_seed_noise(tmp_path):
    """Two seeds of the exact path give the seed noise; a fast run (bf16 where the CPU has it, the fast
    dropout, no compile to keep the test short) must land within it (plus a small floor). Batches of 512: half
    the cost of 1024; measured: hr@10 0.055 / 0.071 for the two exact seeds, the fast run 0.004 from seed 1 (bound 0.042)."""
    from cva_rec.training.run import run_experiment

    def run(seed, fast):
        cfg = load_config(None, small_overrides(tmp_path, "dataset.engine=streaming", f"train.seed={seed}",
                                                f"train.fast={str(fast).lower()}", "train.compile=false",
                                                "train.limit_train_batches=40", "train.batch_size=512", f"output.name=s{seed}-{fast}"))
        return run_experiment(cfg, enable_progress_bar=False)["test"]

    exact1, exact2, fast1 = run(1, False), run(2, False), run(1, True)
    for key, floor in (("hr@10", 0.01), ("ndcg@10", 0.005)):
        noise = abs(exact1[key] - exact2[key])
        assert abs(fast1[key] - exact1[key]) <= 2 * noise + floor, (key, exact1[key], exact2[key], fast1[key])
    assert fast1["hr@10"] > 0.02  # it learnt something (popularity alone is ~0.03-0.05 here)
