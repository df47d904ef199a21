"""loss.name=microlens_inbatch: the MicroLens benchmark's loss on a batch computed by hand,
its user-window training rows, and a real training run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cva_rec.training.microlens_loss import microlens_loss
from tests.conftest import small_overrides

# two users, windows of max_seq_length + 1 = 3 items (right-padded), vectors of width 1
WINDOWS = torch.tensor([[1, 2, 3], [2, 4, 0]])
USER = torch.tensor([[[1.0], [2.0]], [[0.5], [9.0]]])  # outputs at the input positions
VEC = {0: 7.0, 1: 1.0, 2: -1.0, 3: 2.0, 4: 0.5}  # item vectors (padding's is never used)


def item_vecs():
    return torch.tensor([[VEC[int(i)]] for i in WINDOWS.reshape(-1)])


def test_loss_by_hand_without_logq():
    # columns = the batch's item positions: items 1, 2, 3 (user 0) and 2, 4 (user 1)
    # user 0, position 0 -> target 2 (its column); items 1, 3 and the other copy of 2 are user 0's: masked
    r0 = math.log(1 + math.exp(1.0 * 0.5 - 1.0 * -1.0))  # candidates: 2 (target), 4
    # user 0, position 1 -> target 3; candidates: 3 (target), 4
    r1 = math.log(1 + math.exp(2.0 * 0.5 - 2.0 * 2.0))
    # user 1, position 0 -> target 4; user 1 holds 2 (both copies masked); candidates: 1, 3, 4 (target)
    s = [0.5 * 1.0, 0.5 * 2.0, 0.5 * 0.5]
    r2 = -(s[2] - math.log(sum(math.exp(x) for x in s)))
    # user 1, position 1 has a padding target: not trained
    expected = (r0 + r1 + r2) / 3
    got = microlens_loss(USER, WINDOWS, item_vecs(), torch.zeros(5))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_loss_by_hand_with_logq():
    q = [1.0, 0.1, 0.2, 0.3, 0.4]
    lq = torch.log(torch.tensor(q))
    l = math.log  # noqa: E741
    r0 = -((-1.0 - l(0.2)) - l(math.exp(-1.0 - l(0.2)) + math.exp(0.5 - l(0.4))))
    r1 = -((4.0 - l(0.3)) - l(math.exp(4.0 - l(0.3)) + math.exp(1.0 - l(0.4))))
    s = [0.5 - l(0.1), 1.0 - l(0.3), 0.25 - l(0.4)]
    r2 = -(s[2] - l(sum(math.exp(x) for x in s)))
    got = microlens_loss(USER, WINDOWS, item_vecs(), lq)
    assert got.item() == pytest.approx((r0 + r1 + r2) / 3, rel=1e-6)


def test_training_windows_are_the_last_items_of_the_training_part(ml100k_cfg, ml100k_data):
    from cva_rec.reference.harness import reference_sequences

    L = ml100k_cfg["dataset"]["max_seq_length"]
    windows = ml100k_data.sequences.training_windows(L)
    tok = ml100k_data.dataset.field2id_token[ml100k_data.dataset.iid_field]
    expected = sorted(tuple(s[:-2][-(L + 1):]) for s in reference_sequences(ml100k_cfg).values())
    got = sorted(tuple(tok[i] for i in w if i) for w in windows)
    assert got == expected and windows.shape[1] == L + 1


def test_microlens_loss_trains_sasrec(tmp_path, ml100k_data):
    from cva_rec.config.schema import load_config
    from cva_rec.training.run import run_experiment

    cfg = load_config(None, small_overrides(tmp_path, "loss.name=microlens_inbatch", "train.batch_size=64", "train.lr=0.005"))
    m = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False, data=ml100k_data)
    assert m["loss"] == "microlens_inbatch"
    assert m["test"]["ndcg@10"] > 0.02  # well above a random ranking (about 0.003 over 1,682 items)
