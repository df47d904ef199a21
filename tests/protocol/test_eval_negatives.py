"""Sampled evaluation negatives: never the target or the user's history, a function of (seed, user),
uniform or by popularity; the sampled softmax's logQ is the log of the distribution it samples."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cva_rec.reference.harness import raw_protocol
from cva_rec.training.evaluation import negative_weights, sample_negatives_per_user


def draw(data, users, sampler, seed=7, n=100):
    pairs = data.test_history.index_pairs(users.numpy())
    targets = torch.as_tensor([data.sequences.of(int(u))[-1] for u in users])
    return sample_negatives_per_user(negative_weights(data.item_popularity, sampler), users, n, seed, targets=targets, history=pairs)


@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
def test_negatives_never_history_or_target(ml100k_cfg, ml100k_data, sampler):
    users, targets, hists = raw_protocol(ml100k_cfg, ml100k_data)  # the independent reader's histories
    negs = draw(ml100k_data, torch.as_tensor(users), sampler)
    for row in range(len(users)):
        got = set(negs[row].tolist())
        assert len(got) == 100 and 0 not in got and targets[row] not in got
        assert not got & set(hists[row].tolist()), users[row]


def test_negatives_depend_on_seed_and_user_only(ml100k_data):
    users = torch.arange(1, 201)
    whole = draw(ml100k_data, users, "uniform")
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    parts = torch.cat([draw(ml100k_data, users[perm][:70], "uniform"), draw(ml100k_data, users[perm][70:], "uniform")])
    assert torch.equal(parts, whole[perm])  # any batch, any order
    assert not torch.equal(draw(ml100k_data, users, "uniform", seed=8), whole)


def test_popularity_sampler_follows_popularity(ml100k_data):
    users = torch.arange(1, 301)
    pop = ml100k_data.item_popularity
    mean_pop = {s: float(pop[draw(ml100k_data, users, s)].mean()) for s in ("uniform", "popularity")}
    # uniform draws an average item (popularity ~ mean); popularity draws far more popular ones
    assert mean_pop["uniform"] == pytest.approx(float(pop[1:].mean()), rel=0.2)
    assert mean_pop["popularity"] > 2 * mean_pop["uniform"]  # measured: about 2.7x on ml-100k
    assert (pop[draw(ml100k_data, users, "popularity")] > 0).all()  # never an item that is no training target


def test_too_many_negatives_is_one_clear_error(ml100k_data):
    from cva_rec.errors import DataError

    with pytest.raises(DataError, match="lower eval.negatives"):
        draw(ml100k_data, torch.tensor([1]), "uniform", n=ml100k_data.n_items)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_sampled_softmax_logq_is_its_sampling_distribution(alpha):
    from cva_rec.training.losses import SampledSoftmax

    pop = torch.tensor([0.0, 10.0, 0.0, 3.0, 99.0])
    loss = SampledSoftmax({"popularity_alpha": alpha, "num_negatives": 4, "temperature": 1.0,
                           "logq_correction": True, "mask_history": True}, pop)
    q = (pop[1:] + 1) ** alpha
    assert torch.allclose(loss.sample_probs[1:], q / q.sum())
    assert torch.allclose(loss.log_q[1:], torch.log(q / q.sum()))
    draws = torch.multinomial(loss.sample_probs, 20000, replacement=True, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=5).double() / 20000
    assert np.allclose(freq[1:].numpy(), (q / q.sum()).numpy(), atol=0.02)


def test_default_sampler_is_uniform_like_a_numpy_reference(ml100k_cfg, ml100k_data):
    """eval.negatives alone draws uniformly (SASRec / BERT4Rec, RecBole's uni100): over many seeds every item
    outside one user's history and target is drawn equally often, as a plain numpy count expects."""
    from cva_rec.config import load_config

    sampler = load_config(None, ["eval.negatives=100"])["eval"]["negatives_sampler"]
    assert sampler == "uniform"
    users, targets, hists = raw_protocol(ml100k_cfg, ml100k_data)  # the independent reader's histories
    row, n, draws = 0, 100, 1500
    user = int(users[row])
    pairs = ml100k_data.test_history.index_pairs(np.array([user]))
    target = torch.as_tensor([ml100k_data.sequences.of(user)[-1]])
    weights = negative_weights(ml100k_data.item_popularity, sampler)
    counts = np.zeros(ml100k_data.n_items, dtype=np.int64)
    for seed in range(draws):
        negs = sample_negatives_per_user(weights, torch.tensor([user]), n, seed, targets=target, history=pairs)
        np.add.at(counts, negs.numpy().ravel(), 1)
    # the reference: the items to exclude come from the raw file's reader, not from the sampler's inputs
    excluded = {0, int(targets[row]), *np.asarray(hists[row]).tolist()}
    allowed = np.array([i for i in range(ml100k_data.n_items) if i not in excluded])
    assert counts[sorted(excluded)].sum() == 0  # never padding, the history or the target
    expected = draws * n / len(allowed)  # each allowed item is in a draw with probability n / len(allowed)
    std = np.sqrt(expected * (1 - n / len(allowed)))
    assert np.abs(counts[allowed] - expected).max() < 5 * std, (counts[allowed].min(), counts[allowed].max(), expected)
    chi2 = float((((counts[allowed] - expected) / std) ** 2).mean())
    assert 0.8 < chi2 < 1.2, chi2  # popularity sampling gives far more than 1 here
