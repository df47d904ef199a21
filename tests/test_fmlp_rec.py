"""FMLP-Rec (cva_rec/backbones/fmlp_rec.py) against independent references.

* the frequency filter equals numpy's FFT reference (rfft, complex weight, irfft, "ortho") and two
  filters computed by hand on a 4-step sequence: the DC-only filter gives the sequence mean at every
  step, the filter e^{-2 pi i k / 4} shifts the sequence by one step (circularly);
* a block is filter -> dropout -> residual + LayerNorm, then the point-wise feed-forward;
* ``forward`` reads the newest item at the last slot, as the authors' left-padded sequences do: it
  equals the same layers run by hand on the left-padded sequence;
* the paper's hyper-parameters are the defaults RecBole's Config carries, and the recipe's keys are typed.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cva_rec.backbones import build_backbone
from cva_rec.backbones.fmlp_rec import FilterBlock, FrequencyFilter
from cva_rec.config.schema import load_config
from cva_rec.data.dataset import recbole_config
from cva_rec.errors import ConfigError
from tests.conftest import small_overrides


def test_filter_equals_numpy_fft_reference():
    torch.manual_seed(0)
    f = FrequencyFilter(length=10, hidden_size=3, dropout=0.0, eps=1e-12)
    x = torch.randn(2, 10, 3)
    w = f.complex_weight.detach().numpy()
    weight = w[..., 0] + 1j * w[..., 1]  # [6, 3]
    ref = np.fft.irfft(np.fft.rfft(x.numpy().astype(np.float64), axis=1, norm="ortho") * weight[None], n=10, axis=1, norm="ortho")
    assert f.complex_weight.shape == (10 // 2 + 1, 3, 2)
    np.testing.assert_allclose(f.filtered(x).detach().numpy(), ref, rtol=0, atol=1e-6)


def test_hand_computed_filters_on_a_four_step_sequence():
    f = FrequencyFilter(length=4, hidden_size=1, dropout=0.0, eps=1e-12)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1)
    with torch.no_grad():
        f.complex_weight.zero_()
        f.complex_weight[0, 0, 0] = 1.0  # keep only frequency 0
    assert torch.allclose(f.filtered(x).view(-1), torch.full((4,), 2.5), atol=1e-6)  # the mean, everywhere
    with torch.no_grad():  # W_k = e^{-2 pi i k / 4}: 1, -i, -1 for k = 0, 1, 2 -> a delay of one step
        f.complex_weight.copy_(torch.tensor([[[1.0, 0.0]], [[0.0, -1.0]], [[-1.0, 0.0]]]))
    assert torch.allclose(f.filtered(x).view(-1), torch.tensor([4.0, 1.0, 2.0, 3.0]), atol=1e-6)
    with pytest.raises(ValueError, match="sized for 4 tokens"):
        f.filtered(torch.zeros(1, 5, 1))


def test_block_is_filter_residual_norm_then_feed_forward():
    torch.manual_seed(1)
    block = FilterBlock(length=6, hidden_size=4, inner_size=16, dropout=0.0, act="gelu", eps=1e-12).eval()
    x = torch.randn(3, 6, 4)
    h = torch.nn.functional.layer_norm(x + block.filter.filtered(x), (4,), eps=1e-12)  # LayerNorm at init: 1, 0
    ff = block.feed_forward
    inner = torch.nn.functional.gelu(h @ ff.dense_1.weight.T + ff.dense_1.bias)
    want = torch.nn.functional.layer_norm(h + inner @ ff.dense_2.weight.T + ff.dense_2.bias, (4,), eps=1e-12)
    assert torch.allclose(block(x), want, atol=1e-5)


@pytest.fixture(scope="module")
def fmlp(ml100k_data, tmp_path_factory):
    cfg = load_config(None, small_overrides(tmp_path_factory.mktemp("fmlp"), "model.name=FMLPRec"))
    config = recbole_config(cfg)
    return config, build_backbone(cfg, config, ml100k_data.train._dataset).eval()


def test_paper_hyper_parameters_are_the_defaults(fmlp):
    config, model = fmlp
    assert (config["n_layers"], config["hidden_size"], config["inner_size"], config["hidden_dropout_prob"]) == (2, 64, 256, 0.5)
    assert (config["hidden_act"], config["layer_norm_eps"], config["initializer_range"]) == ("gelu", 1e-12, 0.02)
    assert len(model.blocks) == 2 and model.blocks[0].filter.complex_weight.shape == (10 // 2 + 1, 64, 2)


def test_recipe_keys_are_typed(tmp_path):
    cfg = load_config(None, small_overrides(tmp_path, "model.name=FMLPRec", "model.n_layers=3", "model.hidden_dropout_prob=0.2"))
    assert cfg["model"]["n_layers"] == 3 and recbole_config(cfg)["hidden_dropout_prob"] == 0.2
    with pytest.raises(ConfigError, match="hidden_dropout_prob"):
        load_config(None, small_overrides(tmp_path, "model.name=FMLPRec", "model.hidden_dropout_prob=1.5"))
    with pytest.raises(ConfigError, match="unknown config key model.n_heads"):
        load_config(None, small_overrides(tmp_path, "model.name=FMLPRec", "model.n_heads=2"))


def test_forward_reads_the_newest_item_at_the_last_slot(fmlp, ml100k_data):
    """The user state equals the authors' computation on the left-padded sequence (ID encoder)."""
    _, model = fmlp
    inter = ml100k_data.train.collate_fn(list(range(32)))
    seq, lens = inter["item_id_list"], inter["item_length"]
    assert (lens < seq.shape[1]).any()
    n = seq.shape[1]
    left = torch.zeros_like(seq)
    for b in range(len(seq)):  # the newest item last, padding (id 0) before the oldest
        left[b, n - lens[b]:] = seq[b, :lens[b]]
    table = model.item_embedding.weight
    with torch.no_grad():
        hidden = model.LayerNorm(table[left] + model.position_embedding.weight[None, :n])
        for block in model.blocks:
            hidden = block(hidden)
        assert torch.allclose(model.forward(seq, lens), hidden[:, -1], atol=1e-5)
        scores = model.full_sort_predict(inter)
    assert scores.shape == (32, model.n_items)
    assert torch.allclose(scores, hidden[:, -1] @ table.T, atol=1e-4)


def test_filters_are_sized_by_the_token_count(tmp_path, ml100k_data, ml100k_codes):
    cfg = load_config(None, small_overrides(tmp_path, "model.name=FMLPRec", "item_encoder.name=lucid",
                                            f"item_encoder.codes_path={ml100k_codes}", "item_encoder.tokens=[id,slice]",
                                            "item_encoder.fusion=late"))
    model = build_backbone(cfg, recbole_config(cfg), ml100k_data.train._dataset).eval()
    assert all(b.filter.length == 20 for b in model.blocks)  # 10 interactions x 2 tokens
    inter = ml100k_data.train.collate_fn(list(range(16)))
    with torch.no_grad():
        assert model.full_sort_predict(inter).shape == (16, model.n_items)


def test_fmlp_rec_trains_and_evaluates(tmp_path):
    from cva_rec.training.run import run_experiment

    cfg = load_config(None, small_overrides(tmp_path, "model.name=FMLPRec", "loss.name=inbatch_softmax",
                                            "train.limit_train_batches=6", "eval.popularity_buckets=0"))
    metrics = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False)
    assert metrics["test"]["n_users"] == 943 and 0.0 <= metrics["test"]["hr@10"] <= 1.0
