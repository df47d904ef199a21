"""eval.catalogue_chunk: ranks computed chunk by chunk equal the full-matrix ranks."""
from __future__ import annotations

import pytest
import torch

from cva_rec.config.schema import load_config
from cva_rec.training.evaluation import chunked_target_ranks, per_user_uniform, target_ranks
from tests.conftest import small_overrides


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_ranks_equal_full_matrix_ranks_with_ties_history_and_padding(chunk):
    g = torch.Generator().manual_seed(0)
    n_users, n_items = 40, 97
    scores = torch.randint(0, 6, (n_users, n_items), generator=g).float()  # many exact ties
    targets = torch.randint(1, n_items, (n_users,), generator=g)
    h_rows = torch.randint(0, n_users, (300,), generator=g)
    h_items = torch.randint(0, n_items, (300,), generator=g)
    h_items[:20] = targets[h_rows[:20]]  # some targets are in their user's history too
    tie = per_user_uniform(torch.arange(n_users), 7)
    want = target_ranks(scores.clone(), targets, (h_rows, h_items), tie_uniform=tie)
    got = chunked_target_ranks(lambda lo, hi: scores[:, lo:hi].clone(), n_items, targets, chunk, (h_rows, h_items), tie_uniform=tie)
    assert torch.equal(got, want)
    assert torch.equal(chunked_target_ranks(lambda lo, hi: scores[:, lo:hi].clone(), n_items, targets, chunk, None, tie_uniform=tie),
                       target_ranks(scores.clone(), targets, None, tie_uniform=tie))
    bad = scores.clone()
    bad[3, 50] = float("nan")
    with pytest.raises(FloatingPointError):
        chunked_target_ranks(lambda lo, hi: bad[:, lo:hi].clone(), n_items, targets, chunk)


def test_a_run_evaluated_in_catalogue_chunks_gives_the_same_metrics(tmp_path):
    from cva_rec.training.run import run_experiment

    out = {}
    for chunk in (0, 300):
        cfg = load_config(None, small_overrides(tmp_path / str(chunk), "dataset.engine=streaming", "train.limit_train_batches=3",
                                                f"eval.catalogue_chunk={chunk}"))
        out[chunk] = run_experiment(cfg, enable_progress_bar=False)
    for split in ("valid", "test"):
        assert {k: v for k, v in out[0][split].items() if k != "from"} == {k: v for k, v in out[300][split].items() if k != "from"}
