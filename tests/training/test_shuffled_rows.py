"""ShuffledRows gives RandomSampler's order (so RecBole's loader's batches) and moves the generator as it does."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from cva_rec.training.datamodule import ShuffledRows


def _identity(batch):
    return batch


@pytest.mark.parametrize("n", [1, 7, 65536 + 3, 200_001])
def test_same_batches_and_generator_state_as_shuffle_true(n):
    g_ref, g_new = torch.Generator(), torch.Generator()
    g_ref.manual_seed(2020), g_new.manual_seed(2020)
    ref = DataLoader(range(n), batch_size=2048, shuffle=True, generator=g_ref, collate_fn=_identity)
    new = DataLoader(range(n), batch_size=2048, sampler=ShuffledRows(n, g_new), generator=g_new, collate_fn=_identity)
    for _ in range(3):  # epochs: each draws from where the last one left the generator
        a, b = list(ref), list(new)
        assert a == b
        assert sorted(i for batch in b for i in batch) == list(range(n))
    assert torch.equal(g_ref.get_state(), g_new.get_state())
    # a partly consumed epoch (Lightning's limit_train_batches) leaves the generator where RandomSampler does
    ia, ib = iter(ref), iter(new)
    assert next(ia) == next(ib)
    assert torch.equal(g_ref.get_state(), g_new.get_state())
    assert len(new) == len(ref)
