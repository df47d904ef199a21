"""BERT4Rec through the item-token seam (ml-100k): the mask token is the backbone's vector, not an item.

* with the ID encoder, training steps equal RecBole's BERT4Rec: the cloze loss in training mode (same
  dropout draws) and every gradient bit for bit, the mask vector's up to summation order (CE and BPR);
* the vectorised ``reconstruct_test_data`` equals RecBole's per-row loop;
* the mask vector is never an item: the item table and the scores have ``n_items`` columns, a candidate
  lookup of the mask id fails, and the mask vector gets gradient only through masked inputs;
* with a content encoder the model trains and evaluates through the project's full-ranking loop.
"""
from __future__ import annotations

import random

import pytest
import torch
from recbole.data.transform import MaskItemSequence

from cva_rec.backbones import build_backbone, item_encoder_of
from cva_rec.config.schema import load_config
from cva_rec.data.dataset import recbole_config
from tests.conftest import small_overrides


def bert_cfg(tmp_path, *extra):
    return load_config(None, small_overrides(tmp_path, "model.name=BERT4Rec", *extra))


def masked_batch(data, config, seed=5, rows=128):
    inter = data.train.collate_fn(list(range(rows)))
    random.seed(seed)
    return MaskItemSequence(config)(data.train._dataset, inter)


def ours_and_recboles(cfg, data):
    from recbole.utils import get_model, init_seed

    config = recbole_config(cfg)
    init_seed(7, True)
    ours = build_backbone(cfg, config, data.train._dataset)
    init_seed(7, True)
    theirs = get_model("BERT4Rec")(config, data.train._dataset)
    return config, ours, theirs


@pytest.mark.parametrize("loss_type", ["CE", "BPR"])
def test_training_step_equals_recboles_bert4rec(tmp_path, ml100k_data, loss_type):
    cfg = bert_cfg(tmp_path)
    config, ours, theirs = ours_and_recboles(cfg, ml100k_data)
    config["loss_type"] = ours.loss_type = theirs.loss_type = loss_type
    batch = masked_batch(ml100k_data, config)
    assert (batch["MASK_INDEX"] > 0).sum() > 50
    torch.manual_seed(11)
    loss_ours = ours.train().calculate_loss(batch)
    torch.manual_seed(11)
    loss_theirs = theirs.train().calculate_loss(batch)
    assert torch.equal(loss_ours, loss_theirs)
    loss_ours.backward()
    loss_theirs.backward()
    grads = {n: p.grad for n, p in theirs.named_parameters()}
    n = ours.n_items
    assert torch.equal(item_encoder_of(ours).table.weight.grad, grads["item_embedding.weight"][:n])
    # the mask vector's gradient sums the same per-position terms as RecBole's row n_items, in another order
    # (a where over positions vs the embedding's scatter-add): equal up to float summation order
    assert torch.allclose(ours.mask_embedding.grad, grads["item_embedding.weight"][n], rtol=0, atol=1e-6)
    assert not torch.equal(ours.mask_embedding.grad, torch.zeros_like(ours.mask_embedding))
    for name, p in ours.named_parameters():
        if not name.startswith(("item_embedding.", "mask_embedding")):
            assert torch.equal(p.grad, grads[name]), name


def test_vectorised_reconstruct_test_data_is_recboles(tmp_path, ml100k_data):
    from recbole.model.sequential_recommender import BERT4Rec

    cfg = bert_cfg(tmp_path)
    model = build_backbone(cfg, recbole_config(cfg), ml100k_data.train._dataset)
    test = ml100k_data.test.collate_fn(list(range(100)))[0]
    train = ml100k_data.train.collate_fn(list(range(100)))  # the first rows of a user: short histories
    seq = torch.cat([test["item_id_list"], train["item_id_list"]])
    lens = torch.cat([test["item_length"], train["item_length"]])
    assert (lens == seq.shape[1]).any() and (lens < seq.shape[1]).any()  # full and padded rows
    assert torch.equal(model.reconstruct_test_data(seq, lens), BERT4Rec.reconstruct_test_data(model, seq.clone(), lens))


def test_the_mask_vector_is_no_item(tmp_path, ml100k_data):
    cfg = bert_cfg(tmp_path)
    config = recbole_config(cfg)
    model = build_backbone(cfg, config, ml100k_data.train._dataset).eval()
    enc, n = item_encoder_of(model), model.n_items
    assert model.mask_token == n and enc.n_items == n
    assert model.item_embedding.weight.shape[0] == n  # the table RecBole's CE and full_sort_predict read
    inter = ml100k_data.test.collate_fn(list(range(64)))[0]
    with torch.no_grad():
        scores = model.full_sort_predict(inter)
    assert scores.shape == (64, n)
    with pytest.raises(IndexError):
        enc.candidates(torch.tensor([model.mask_token]))
    # not a row of the table, but an input: a changed mask vector changes the scores (the last position is masked)
    with torch.no_grad():
        model.mask_embedding.add_(1.0)
        assert not torch.allclose(model.full_sort_predict(inter), scores)
    # ... and it learns only from masked positions
    batch = masked_batch(ml100k_data, config)
    unmasked = batch["item_id_list"].clone()
    batch.interaction["Mask_item_id_list"] = unmasked  # no position masked (the loss targets stay)
    model.train().calculate_loss(batch).backward()
    assert model.mask_embedding.grad is None or not model.mask_embedding.grad.any()


def test_mask_vector_is_placed_at_every_token_of_a_masked_interaction(tmp_path, ml100k_data, ml100k_codes):
    """LUCID late fusion, 3 tokens per item: a masked interaction's 3 tokens are the mask vector; the scores
    read one output per interaction, so BERT4Rec's loss and predictions index interactions as in RecBole."""
    cfg = bert_cfg(tmp_path, "item_encoder.name=lucid", f"item_encoder.codes_path={ml100k_codes}",
                   "item_encoder.tokens=[id,slice,room]", "item_encoder.fusion=late")
    config = recbole_config(cfg)
    model = build_backbone(cfg, config, ml100k_data.train._dataset).eval()
    assert item_encoder_of(model).tokens_per_item == 3
    batch = masked_batch(ml100k_data, config, rows=32)
    seq = batch["Mask_item_id_list"]
    with torch.no_grad():
        out = model.every_interaction(seq)
        assert out.shape == (*seq.shape, model.hidden_size)
        # a masked interaction's output does not depend on which item was hidden there
        other = batch["item_id_list"].masked_fill(seq == model.mask_token, 1)
        swapped = other.masked_fill(seq == model.mask_token, model.mask_token)
        assert torch.equal(model.every_interaction(swapped), out)
        loss = model.calculate_loss(batch)
        scores = model.full_sort_predict(batch)
    assert torch.isfinite(loss) and scores.shape == (32, model.n_items)


def test_inbatch_loss_on_full_windows(tmp_path, ml100k_data):
    """Through the seam the mask follows the last item; a batch without padding (every window full) has no
    id 0 among the step's encoded items, and the masked slot must not be looked up as one."""
    from cva_rec.training.losses import build_loss

    cfg = bert_cfg(tmp_path, "loss.name=inbatch_softmax")
    model = build_backbone(cfg, recbole_config(cfg), ml100k_data.train._dataset)
    batch = ml100k_data.test.collate_fn(list(range(64)))[0]
    assert (batch["item_length"] == batch["item_id_list"].shape[1]).all() and (batch["item_id_list"] != 0).all()
    loss = build_loss(cfg, ml100k_data.item_popularity)(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.mask_embedding.grad.any()


def test_cloze_loss_needs_recboles_masking_loader(tmp_path):
    from cva_rec.errors import ConfigError

    with pytest.raises(ConfigError, match="needs dataset.engine=recbole"):
        bert_cfg(tmp_path, "loss.name=full_softmax", "dataset.engine=streaming")
    assert bert_cfg(tmp_path, "loss.name=inbatch_softmax", "dataset.engine=streaming")["dataset"]["engine"] == "streaming"


@pytest.mark.parametrize("loss", ["full_softmax", "inbatch_softmax"])
def test_bert4rec_trains_and_evaluates(tmp_path, loss):
    from cva_rec.training.run import run_experiment

    cfg = bert_cfg(tmp_path, f"loss.name={loss}", "train.limit_train_batches=6", "eval.popularity_buckets=0")
    metrics = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False)
    assert metrics["test"]["n_users"] == 943 and 0.0 <= metrics["test"]["hr@10"] <= 1.0


def test_chunked_evaluation_adds_bert4recs_item_bias(tmp_path):
    """eval.catalogue_chunk scores user . item + output_bias as full_sort_predict does (the bias is trained
    by the cloze loss), so the chunked metrics equal the unchunked ones."""
    from cva_rec.data.dataset import build_data
    from cva_rec.training.run import run_experiment

    out, data = {}, None
    for chunk in (0, 300):
        cfg = bert_cfg(tmp_path / str(chunk), "train.limit_train_batches=6", "eval.popularity_buckets=0",
                       f"eval.catalogue_chunk={chunk}", "train.lr=0.01")
        data = data or build_data(cfg)  # one dataset for both runs: the chunk is an evaluation setting
        out[chunk] = run_experiment(cfg, tmp_path / f"run{chunk}", enable_progress_bar=False, data=data)
    for split in ("valid", "test"):
        assert {k: v for k, v in out[0][split].items() if k != "from"} == {k: v for k, v in out[300][split].items() if k != "from"}
