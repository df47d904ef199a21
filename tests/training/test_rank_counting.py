"""The evaluation's counting kernel and reused buffers leave every rank as the independent reference has it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cva_rec.reference.ranking import ranks as reference_ranks
from cva_rec.training.evaluation import (RankBuffers, RankCollector, all_finite, count_above_and_equal, per_user_uniform,
                                         target_ranks)


def _loop_counts(scores: np.ndarray, threshold: np.ndarray):
    above, equal = [], []
    for row, t in zip(scores, threshold):
        above.append(sum(1 for s in row if s > t))
        equal.append(sum(1 for s in row if s == t))
    return above, equal


def test_counts_equal_a_loop_with_ties_nan_and_infinities():
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 5, (7, 31), generator=g).float()
    scores[0, 3] = float("nan")
    scores[1, :4] = float("-inf")
    scores[2, 5] = float("inf")
    threshold = scores[:, 7].clone()
    threshold[3] = float("nan")  # a NaN threshold: nothing is above or equal
    above, equal = count_above_and_equal(scores, threshold)
    want_above, want_equal = _loop_counts(scores.numpy(), threshold.numpy())
    assert above.tolist() == want_above and equal.tolist() == want_equal
    assert above.dtype == equal.dtype == torch.int64


def test_reused_buffers_across_batch_shapes_give_the_same_counts():
    g = torch.Generator().manual_seed(2)
    buffers = RankBuffers()
    for rows, cols in [(9, 40), (3, 40), (9, 41), (2, 7), (12, 50)]:  # grows, shrinks, changes width
        scores = torch.randint(0, 4, (rows, cols), generator=g).float()
        threshold = scores[:, 0].clone()
        got = count_above_and_equal(scores, threshold, buffers)
        want = _loop_counts(scores.numpy(), threshold.numpy())
        assert [x.tolist() for x in got] == [list(x) for x in want]


def test_target_ranks_with_buffers_equal_the_reference_evaluator_over_batches():
    g = torch.Generator().manual_seed(3)
    n_users, n_items, seed = 50, 120, 11
    scores = torch.randint(0, 8, (n_users, n_items), generator=g).float()  # many exact ties
    targets = torch.randint(1, n_items, (n_users,), generator=g)
    histories = [sorted(set(torch.randint(1, n_items, (6,), generator=g).tolist()) - {int(targets[u])}) for u in range(n_users)]
    users = torch.arange(100, 100 + n_users)
    want = reference_ranks(scores.numpy(), users.tolist(), targets.tolist(), seed, histories=histories)
    buffers, got = RankBuffers(), []
    for lo in range(0, n_users, 17):  # uneven batches through one set of buffers
        hi = min(lo + 17, n_users)
        rows = torch.tensor([r - lo for r in range(lo, hi) for _ in histories[r]], dtype=torch.long)
        items = torch.tensor([i for r in range(lo, hi) for i in histories[r]], dtype=torch.long)
        got.append(target_ranks(scores[lo:hi].clone(), targets[lo:hi], (rows, items),
                                tie_uniform=per_user_uniform(users[lo:hi], seed), buffers=buffers))
    assert torch.cat(got).tolist() == want.tolist()


def test_all_finite_catches_nan_and_inf_and_survives_an_overflowing_sum():
    x = torch.ones(4, 10)
    assert all_finite(x)
    assert not all_finite(torch.where(torch.arange(10) == 3, float("nan"), 1.0).expand(4, 10))
    assert not all_finite(torch.where(torch.arange(10) == 3, float("-inf"), 1.0).expand(4, 10))
    huge = torch.full((4, 10), 3e38)  # every score finite, their float32 sum is not
    assert not torch.isfinite(huge.sum())
    assert all_finite(huge)


def test_evaluation_scores_in_float32_under_bf16_autocast(ml100k_cfg, ml100k_data):
    """bf16 scoring would merge nearby scores into ties and move ranks: the eval step refuses it by
    scoring in float32 whatever autocast training uses, so its ranks equal the plain float32 ones."""
    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.run import build_module

    module = build_module(ml100k_cfg, ml100k_data).eval()
    batch = next(iter(RecBoleDataModule(ml100k_data, ml100k_cfg).val_dataloader()))
    collected = []
    for autocast in (False, True):
        module.collector = RankCollector()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            module._eval_step(batch, 0)
        collected.append(module.collector.tensors()[2])
    assert torch.equal(collected[0], collected[1])
    # and bf16 scores really would differ: the check above is not vacuous
    with torch.no_grad():
        fp32 = module.model.full_sort_predict(batch[0]).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = module.model.full_sort_predict(batch[0]).float()
    assert not torch.equal(fp32, bf16)


@pytest.mark.parametrize("n", [0, 1])
def test_rank_buffers_hand_out_views_of_one_allocation(n):
    buffers = RankBuffers()
    a = buffers.flags((4, 5 + n))
    b = buffers.flags((2, 3))
    assert b.base is a.base or np.shares_memory(a, b)
