"""``loss.name: window_cloze``: BERT4Rec's masked-item objective on one window per user (ml-100k).

* the sequences it masks are each user's last ``max_seq_length`` training items, checked against the raw
  per-user sequences with a plain loop;
* the loss is RecBole's BERT4Rec cloze loss on those sequences masked by RecBole's transform (same
  ``random`` draws), computed here by RecBole's own class;
* a run with it trains on batches of users and evaluates; other backbones are refused in one line.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.data.transform import MaskItemSequence

from cva_rec.backbones import build_backbone
from cva_rec.config.schema import load_config
from cva_rec.data.dataset import recbole_config
from cva_rec.training.cloze_loss import window_sequences
from cva_rec.training.losses import build_loss
from tests.conftest import small_overrides

L = 10


@pytest.mark.parametrize("length", [L, 40])  # ml-100k users hold >= 20 items: windows full at 10, some short at 40
def test_window_sequences_are_each_users_last_training_items(ml100k_data, length):
    seqs = ml100k_data.sequences
    windows = torch.from_numpy(seqs.training_windows(length))
    got, lengths = window_sequences(windows, length)
    train = seqs.training_part()
    expected = []
    for u in range(len(train.indptr) - 1):
        items = list(train.items[train.indptr[u]:train.indptr[u + 1]])
        if len(items) >= 2:  # a user with a training target has a window
            last = items[-length:]
            expected.append(last + [0] * (length - len(last)))
    assert got.tolist() == expected
    assert lengths.tolist() == [sum(1 for i in row if i) for row in expected]
    if length == 40:
        assert (lengths == length).any() and (lengths < length).any()  # full and short windows both covered


def test_loss_is_recboles_cloze_on_the_windows(tmp_path, ml100k_data):
    from recbole.utils import get_model, init_seed

    cfg = load_config(None, small_overrides(tmp_path, "model.name=BERT4Rec", "loss.name=window_cloze"))
    config = recbole_config(cfg)
    init_seed(7, True)
    ours = build_backbone(cfg, config, ml100k_data.train._dataset)
    init_seed(7, True)
    theirs = get_model("BERT4Rec")(config, ml100k_data.train._dataset)
    windows = torch.from_numpy(ml100k_data.sequences.training_windows(L)[:96])
    loss = build_loss(cfg, ml100k_data.item_popularity)
    for seed in (3, 4):  # draws with and without RecBole's fine-tune batches (mask the last item only)
        random.seed(seed)
        torch.manual_seed(11)
        got = loss(ours.train(), windows)
        rows = np.asarray(windows)
        seq = np.array([r[1:] if (r != 0).sum() > L else r[:L] for r in rows])
        batch = Interaction({"item_id_list": torch.from_numpy(seq), "item_length": torch.from_numpy((seq != 0).sum(1))})
        random.seed(seed)
        masked = MaskItemSequence(config)(ml100k_data.train._dataset, batch)
        assert (masked["MASK_INDEX"] > 0).any()
        torch.manual_seed(11)
        assert torch.equal(got, theirs.train().calculate_loss(masked))
    got.backward()
    assert ours.mask_embedding.grad.any()


def test_window_cloze_trains_and_evaluates_and_needs_bert4rec(tmp_path):
    from cva_rec.errors import ConfigError
    from cva_rec.training.run import run_experiment

    cfg = load_config(None, small_overrides(tmp_path, "model.name=BERT4Rec", "loss.name=window_cloze", "train.batch_size=64",
                                            "train.limit_train_batches=4", "eval.popularity_buckets=0"))
    metrics = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False)
    assert metrics["test"]["n_users"] == 943 and metrics["epochs_trained"] == 1
    sasrec = load_config(None, small_overrides(tmp_path, "loss.name=window_cloze"))
    with pytest.raises(ConfigError, match="needs model.name=BERT4Rec"):
        run_experiment(sasrec, tmp_path / "run2", enable_progress_bar=False)
