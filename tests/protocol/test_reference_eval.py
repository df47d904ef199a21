"""The project's metrics on a real trained checkpoint equal the independent reference evaluator's
(cva_rec/reference): full ranking masked and unmasked, per user and on average."""
from __future__ import annotations

import numpy as np
import pytest

from cva_rec.reference import ranking
from cva_rec.reference.harness import raw_protocol, reference_metrics, score_matrix
from tests.conftest import small_overrides

TOPK = (10, 20)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ml100k_data):
    """20 batches of SASRec on ml-100k (max_seq_length 10; the comparisons are exact on any checkpoint, it only
    has to have learnt enough for masking to matter, which test_masking_changes_ranks checks); its test scores."""
    from cva_rec.config.schema import load_config
    from cva_rec.training.run import build_module, load_checkpoint_into, run_experiment

    tmp = tmp_path_factory.mktemp("refeval")
    cfg = load_config(None, small_overrides(tmp, "train.limit_train_batches=20"))
    metrics = run_experiment(cfg, tmp / "run", enable_progress_bar=False, data=ml100k_data)
    module = build_module(cfg, ml100k_data)
    load_checkpoint_into(module, metrics["best_checkpoint"])
    users, scores = score_matrix(module, ml100k_data, cfg)
    return cfg, tmp / "run", metrics, users, scores


def per_user_ranks(path):
    rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)
    return rows[:, 0], rows[:, 1], rows[:, 2]


@pytest.mark.parametrize("mask", [True, False])
def test_full_ranking_equals_reference(trained, ml100k_data, tmp_path, mask):
    from cva_rec.training.evaluate import evaluate_run

    cfg, run_dir, _, users, scores = trained
    result = evaluate_run(run_dir, overrides=[f"eval.mask_history={str(mask).lower()}"], progress=False, per_user=tmp_path / "ranks.csv")
    p_users, p_targets, p_ranks = per_user_ranks(tmp_path / "ranks.csv")
    r_users, r_targets, r_hists = raw_protocol(cfg, ml100k_data)
    assert np.array_equal(p_users, r_users) and np.array_equal(users, r_users)
    assert np.array_equal(p_targets, r_targets)
    ref_ranks, ref = reference_metrics(scores, r_users, r_targets, cfg["train"]["seed"], TOPK, histories=r_hists if mask else None)
    assert np.array_equal(p_ranks, ref_ranks)
    for key, value in ref.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
def test_sampled_ranking_equals_reference(trained, ml100k_data, tmp_path, sampler):
    """Sampled evaluation: the project's ranks equal the reference's over the same negatives,
    which never hold an item of the user's raw-file history or its target."""
    import torch

    from cva_rec.training.evaluate import evaluate_run
    from cva_rec.training.evaluation import negative_weights, sample_negatives_per_user

    cfg, run_dir, _, users, scores = trained
    result = evaluate_run(run_dir, overrides=["eval.negatives=100", f"eval.negatives_sampler={sampler}"], progress=False,
                          per_user=tmp_path / "ranks.csv")
    p_users, p_targets, p_ranks = per_user_ranks(tmp_path / "ranks.csv")
    r_users, r_targets, r_hists = raw_protocol(cfg, ml100k_data)
    assert np.array_equal(p_users, r_users) and np.array_equal(p_targets, r_targets)
    negs = sample_negatives_per_user(negative_weights(ml100k_data.item_popularity, sampler), torch.as_tensor(r_users), 100,
                                     cfg["train"]["seed"], targets=torch.as_tensor(r_targets),
                                     history=ml100k_data.test_history.index_pairs(r_users)).numpy()
    for row in range(len(r_users)):
        assert not set(negs[row]) & ({int(r_targets[row])} | set(r_hists[row].tolist()))
    ref_ranks, ref = reference_metrics(scores, r_users, r_targets, cfg["train"]["seed"], TOPK, negatives=negs)
    assert np.array_equal(p_ranks, ref_ranks)
    for key, value in ref.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key


def test_masking_changes_ranks(trained, ml100k_data):
    """The masked and unmasked references differ on this checkpoint (the comparison above is not vacuous)."""
    cfg, _, _, users, scores = trained
    r_users, r_targets, r_hists = raw_protocol(cfg, ml100k_data)
    masked = ranking.ranks(scores, r_users, r_targets, 0, histories=r_hists)
    unmasked = ranking.ranks(scores, r_users, r_targets, 0)
    assert (masked < unmasked).sum() > len(r_users) // 2


def test_reference_rank_rule_by_hand():
    s = np.array([0.0, 5.0, 3.0, 3.0, 3.0, 1.0])
    assert ranking.rank_one(s, 5, 0.0) == 4  # 4 items above item 5
    assert ranking.rank_one(s, 2, 0.0) == 1 and ranking.rank_one(s, 2, 0.99) == 3  # two ties: places 1..3
    assert ranking.rank_one(s, 2, 0.5, exclude=[1, 3]) == 1  # one tie left (item 4): floor(0.5 * 2) = 1
    assert ranking.rank_one(s, 2, 0.0, candidates=[5, 1]) == 1  # sampled: only item 1 is above
    with pytest.raises(ValueError):
        ranking.rank_one(np.array([0.0, np.nan, 1.0]), 2, 0.0)


def test_tie_place_matches_the_project():
    import torch

    from cva_rec.training.evaluation import per_user_uniform

    users = torch.tensor([1, 2, 3, 943, 10**6])
    for seed in (0, 2020):
        ours = per_user_uniform(users, seed).tolist()
        assert ours == [ranking.tie_uniform(u, seed) for u in users.tolist()]
