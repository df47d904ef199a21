"""Hand-written loops fitted by the training runs' Trainer: hardware settings, per-epoch batches, DDP shares."""
from __future__ import annotations

import pytest
import torch

from cva_rec.errors import ConfigError
from cva_rec.training import loop_fit
from cva_rec.training.loop_fit import EpochBatches, epoch_generators, loop_config


def test_loop_config_takes_the_device_and_the_recipes_ddp_settings_only_for_the_same_accelerator():
    ddp = {"accelerator": "gpu", "devices": 4, "strategy": "ddp", "num_nodes": 2, "deterministic": True}
    tr = loop_config("cuda", 7, 5.0, ddp)["train"]
    assert (tr["accelerator"], tr["devices"], tr["strategy"], tr["num_nodes"]) == ("gpu", 4, "ddp", 2)
    assert tr["epochs"] == 7 and tr["grad_clip"] == 5.0 and tr["deterministic"] is True
    assert tr["precision"] == "32-true" and not tr["fast"] and not tr["early_stopping_patience"]
    one = loop_config("cuda:1", 3, None, ddp)["train"]  # a named GPU: that one alone
    assert (one["devices"], one["strategy"], one["num_nodes"]) == ([1], "auto", 1)
    cpu = loop_config("cpu", 3, None, ddp)["train"]  # the recipe's GPU settings do not apply to a CPU fit
    assert (cpu["accelerator"], cpu["devices"], cpu["strategy"]) == ("cpu", 1, "auto")
    assert loop_config("cpu", 3, None, {"accelerator": "cpu", "devices": 2, "strategy": "ddp"})["train"]["devices"] == 2
    assert loop_config("cpu", 1)["train"]["devices"] == 1
    with pytest.raises(ConfigError, match="unknown torch device"):
        loop_config("gpu0", 1)


def test_epoch_generators_repeat_per_key_and_differ_across_epochs_and_streams():
    def draw(*key):
        rng, gen = epoch_generators(*key)
        return rng.integers(1 << 30, size=4).tolist(), torch.randperm(20, generator=gen).tolist()

    assert draw(3, 1) == draw(3, 1)
    assert draw(3, 1) != draw(3, 2) and draw(3, 1) != draw(4, 1) and draw(3, 1, 0) != draw(3, 1, 1)


@pytest.mark.parametrize("count, world", [(7, 1), (7, 2), (7, 3), (2, 3), (6, 2)])
def test_ddp_ranks_step_equally_often_and_share_out_every_batch(monkeypatch, count, world):
    seen = []
    for rank in range(world):
        monkeypatch.setattr(loop_fit, "rank_and_world", lambda rank=rank: (rank, world))
        batches = EpochBatches(lambda epoch: [f"e{epoch}b{i}" for i in range(count)], count, lambda: 5)
        got = list(batches)
        assert len(got) == len(batches) == -(-count // world)  # DDP: every rank takes as many steps
        seen.append(got)
    assert {b for got in seen for b in got} == {f"e5b{i}" for i in range(count)}  # every batch of epoch 5, some twice
    if count % world == 0:
        assert sorted(b for got in seen for b in got) == sorted(f"e5b{i}" for i in range(count))
