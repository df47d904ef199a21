"""The ``lucid`` item encoder inside real RecBole backbones on ml-100k with real text-derived codes."""
from __future__ import annotations

import pytest
import torch

from cva_rec.backbones import item_encoder_of
from cva_rec.config.schema import load_config
from cva_rec.errors import ConfigError
from cva_rec.training.losses import build_loss
from cva_rec.training.run import build_module
from tests.conftest import small_overrides


def lucid_module(tmp_path, data, codes, *extra, model="SASRec", loss="inbatch_softmax"):
    cfg = load_config(None, small_overrides(tmp_path, f"model.name={model}", "item_encoder.name=lucid",
                                            f"item_encoder.codes_path={codes}", f"loss.name={loss}", *extra))
    if model != "SASRec":  # RecBole's model hyper-parameters live in the dataset's config
        from cva_rec.data.dataset import build_data

        data = build_data(cfg)
    torch.manual_seed(0)
    module = build_module(cfg, data)
    module.data = data
    return cfg, module


def first_batch(data, cfg):
    from cva_rec.training.datamodule import RecBoleDataModule

    dm = RecBoleDataModule(data, cfg)
    return next(iter(dm.train_dataloader()))


def test_late_tokens_interleave_and_share_positions(tmp_path, ml100k_data, ml100k_codes):
    cfg, module = lucid_module(tmp_path, ml100k_data, ml100k_codes, "item_encoder.tokens=[id,slice,room]")
    enc = item_encoder_of(module.model)
    seq = torch.tensor([[5, 7, 0, 0]])
    layout = enc.history(seq, torch.tensor([2]))
    assert layout.kinds.tolist() == [[0, 1, 2] * 4] and layout.positions.tolist() == [[0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]]
    assert layout.mask.tolist() == [[True] * 6 + [False] * 6] and layout.lengths.tolist() == [6]
    # the backbone output reads the last token of the last interaction (length x K)
    out = module.model.forward(seq, torch.tensor([2]))
    assert out.shape == (1, enc.output_dim) and torch.isfinite(out).all()


def test_candidate_is_sum_of_token_vectors(tmp_path, ml100k_data, ml100k_codes):
    _, module = lucid_module(tmp_path, ml100k_data, ml100k_codes, "item_encoder.tokens=[id,slice,room]")
    enc = item_encoder_of(module.model).eval()
    items = torch.tensor([3, 10, 42])
    expected = sum(enc.kind_vectors(k, items) for k in ("id", "slice", "room"))
    assert torch.allclose(enc(items), expected, atol=1e-6)


@pytest.mark.parametrize("fusion", ["late", "early-concat", "early-gate", "early-sum"])
def test_id_scale_zero_equals_the_model_without_id(tmp_path, ml100k_data, ml100k_codes, fusion):
    """Phase-out end point: at id_scale 0 the model scores exactly like the one whose ID table is deleted."""
    kind, _, early = fusion.partition("-")
    extra = [f"item_encoder.fusion={kind}"] + ([f"item_encoder.early={early}"] if early else [])
    cfg, module = lucid_module(tmp_path, ml100k_data, ml100k_codes, *extra)
    model, enc = module.model.eval(), item_encoder_of(module.model)
    batch = first_batch(ml100k_data, cfg)
    enc.set_id_scale(0.0)
    with torch.no_grad():
        before = model.full_sort_predict(batch).clone()
    enc.drop_id()
    assert not any(".encoder.table." in k for k in module.state_dict()), "ID table still in the state dict"
    assert not any(p.shape[0] == enc.n_items for n, p in enc.named_parameters() if "table" in n.split(".")[0])
    with torch.no_grad():
        after = model.full_sort_predict(batch)
    assert torch.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize("model,fusion", [("SASRec", "late"), ("GRU4Rec", "late"), ("NextItNet", "late"), ("SASRec", "early")])
def test_each_backbone_learns_with_lucid_tokens(tmp_path, ml100k_data, ml100k_codes, model, fusion):
    extra = [f"item_encoder.fusion={fusion}", "item_encoder.early=gate", "item_encoder.tokens=[id,slice,room]"]
    cfg, module = lucid_module(tmp_path, ml100k_data, ml100k_codes, *extra, model=model)
    batch = first_batch(module.data, cfg)[:512]  # half a training batch: 12 steps on it show the learning
    enc = item_encoder_of(module.model)
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    slice_before = enc.slice_enc.embedding.tables[0].weight.detach().clone()
    losses = []
    module.train()
    for _ in range(12):
        opt.zero_grad()
        loss = module.loss(module.model, batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9, losses
    assert not torch.equal(slice_before, enc.slice_enc.embedding.tables[0].weight), "slice tables got no gradient"


def test_full_softmax_with_late_tokens(tmp_path, ml100k_data, ml100k_codes):
    cfg, module = lucid_module(tmp_path, ml100k_data, ml100k_codes, loss="full_softmax")
    loss = module.loss(module.model, first_batch(ml100k_data, cfg))
    loss.backward()
    assert torch.isfinite(loss) and item_encoder_of(module.model).table.weight.grad is not None


def test_bad_lucid_configs(tmp_path, ml100k_data, ml100k_codes):
    with pytest.raises(ConfigError, match="tokens"):
        lucid_module(tmp_path, ml100k_data, ml100k_codes, "item_encoder.tokens=[id,video]")
    with pytest.raises(ConfigError, match="replace"):
        lucid_module(tmp_path, ml100k_data, ml100k_codes, "item_encoder.fusion=early", "item_encoder.early=replace")
    with pytest.raises(ConfigError, match="codes_path"):
        cfg = load_config(None, small_overrides(tmp_path, "item_encoder.name=lucid"))
        build_module(cfg, ml100k_data)
    with pytest.raises(Exception, match="codes"):
        lucid_module(tmp_path, ml100k_data, tmp_path / "missing.npz")
