"""metrics.json's valid block: every metric from the epoch of best.ckpt, not the last epoch's values beside
the best monitored one. Checked against best.ckpt evaluated again on the validation split."""
import json

import torch
from lightning.pytorch.callbacks import Callback

from cva_rec.backbones import item_encoder_of
from cva_rec.config import load_config
from cva_rec.training.evaluate import evaluate_run
from cva_rec.training.run import run_experiment
from tests.conftest import small_overrides


class SpoilLastEpoch(Callback):
    """Scrambles the item table before the last epoch's validation, so that epoch is not the best one."""

    def on_validation_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == trainer.max_epochs - 1:
            for weight in item_encoder_of(pl_module.model).parameters():  # the ID table: rows to other items
                weight.data.copy_(weight.data[torch.randperm(weight.shape[0], generator=torch.Generator().manual_seed(0))])


def test_valid_block_is_the_best_epochs_row(tmp_path, ml100k_data):
    cfg = load_config(None, small_overrides(tmp_path, "train.epochs=3", "train.limit_train_batches=10", "eval.popularity_buckets=0"))
    metrics = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False, data=ml100k_data, callbacks=[SpoilLastEpoch()])
    valid = json.loads((tmp_path / "run" / "metrics.json").read_text())["valid"]
    assert valid["epoch"] < 2 and metrics["valid"]["epoch"] == valid["epoch"]  # the spoiled last epoch is not the best
    again = evaluate_run(tmp_path / "run", split="valid", progress=False, out_dir=tmp_path / "eval")  # best.ckpt
    scalar = {k: v for k, v in again.items() if isinstance(v, float)}
    assert len(scalar) == 8  # hr, ndcg, mrr, recall @10 and @20
    for key, value in scalar.items():
        assert abs(valid[key] - value) < 1e-9, (key, valid[key], value)
