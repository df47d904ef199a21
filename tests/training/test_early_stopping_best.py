"""Early stopping on validation NDCG@10 tests the best epoch's weights: a run whose later epochs are spoiled
stops early, and its test metrics (and per_user_test.npz) equal best.ckpt evaluated again, not last.ckpt."""
import json

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from cva_rec.backbones import item_encoder_of
from cva_rec.config import load_config
from cva_rec.training.evaluate import evaluate_run
from cva_rec.training.run import run_experiment
from tests.conftest import small_overrides

MAX_EPOCHS = 6


class SpoilAfterFirstEpoch(Callback):
    """Every validation after the first sees the item table's rows shuffled: epoch 0 is the best one."""

    def on_validation_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch >= 1:
            for weight in item_encoder_of(pl_module.model).parameters():
                g = torch.Generator().manual_seed(trainer.current_epoch)
                weight.data.copy_(weight.data[torch.randperm(weight.shape[0], generator=g)])

    def on_train_end(self, trainer, pl_module):
        # the weights the fit ended with (Lightning does not rewrite last.ckpt at the epoch early stopping ends)
        trainer.save_checkpoint(trainer.checkpoint_callback.dirpath + "/final.ckpt")


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, ml100k_data):
    tmp = tmp_path_factory.mktemp("early")
    cfg = load_config(None, small_overrides(tmp, f"train.epochs={MAX_EPOCHS}", "train.early_stopping_patience=1",
                                            "train.limit_train_batches=10", "eval.popularity_buckets=0"))
    metrics = run_experiment(cfg, tmp / "run", enable_progress_bar=False, data=ml100k_data, callbacks=[SpoilAfterFirstEpoch()])
    return tmp, metrics


def test_early_stopping_tests_the_best_epochs_weights(stopped_run):
    tmp, metrics = stopped_run
    assert metrics["valid"]["epoch"] == 0
    assert metrics["epochs_trained"] < MAX_EPOCHS  # patience 1: stopped after the first worse validation
    assert metrics["stopped_by"] == "early_stopping"
    assert 0 < metrics["fit_cpu_seconds"]
    best = evaluate_run(tmp / "run", progress=False, out_dir=tmp / "eval-best")
    final = evaluate_run(tmp / "run", checkpoint=str(tmp / "run" / "checkpoints" / "final.ckpt"), progress=False,
                         out_dir=tmp / "eval-final")
    for key in ("ndcg@10", "hr@10", "hr@20"):
        assert metrics["test"][key] == pytest.approx(best[key], abs=1e-12)
    assert final["ndcg@10"] < metrics["test"]["ndcg@10"]  # the spoiled final weights are not what was tested


def test_per_user_file_holds_the_tested_ranks(stopped_run, ml100k_data):
    from cva_rec.reference.harness import reference_sequences

    tmp, metrics = stopped_run
    f = np.load(tmp / "run" / "per_user_test.npz", allow_pickle=False)
    ranks = f["rank"]
    assert len(ranks) == metrics["test"]["n_users"]
    ndcg = np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0).mean()
    assert ndcg == pytest.approx(metrics["test"]["ndcg@10"], abs=1e-12)
    assert (ranks < 20).mean() == pytest.approx(metrics["test"]["hr@20"], abs=1e-12)
    # users, targets and candidate counts against the raw file read independently
    cfg = load_config(tmp / "run" / "config.yaml")
    seqs = reference_sequences(cfg)
    items = ml100k_data.dataset.field2id_token[ml100k_data.dataset.iid_field]
    assert sorted(f["user_token"].tolist()) == sorted(seqs)
    for token, target, n in zip(f["user_token"], f["target"], f["n_candidates"]):
        seq = seqs[str(token)]
        assert items[target] == seq[-1]
        # full ranking over every item but padding, the user's earlier items (other than the target) masked
        assert n == ml100k_data.n_items - 1 - len(set(seq[:-1]) - {seq[-1]})
    assert not f["cold"].any()


def test_a_time_limit_stops_the_fit_and_says_so(tmp_path, ml100k_data):
    """train.max_minutes ends the fit (Lightning's max_time) within its first epoch here; metrics.json tells it
    apart from convergence, and the test still runs on the weights the fit ended with."""
    cfg = load_config(None, small_overrides(tmp_path, "train.epochs=50", "train.max_minutes=0.0001",
                                            "train.early_stopping_patience=2", "eval.popularity_buckets=0"))
    metrics = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False, data=ml100k_data)
    assert metrics["stopped_by"] == "max_minutes"
    assert metrics["epochs_trained"] < 2
    assert metrics["test"]["n_users"] > 0


def test_the_last_epoch_is_not_called_convergence(tmp_path, ml100k_data):
    cfg = load_config(None, small_overrides(tmp_path, "train.epochs=1", "train.limit_train_batches=2",
                                            "eval.popularity_buckets=0"))
    metrics = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False, data=ml100k_data)
    assert metrics["stopped_by"] == "max_epochs"


def test_nothing_of_the_run_stays_open_when_it_returns(tmp_path, ml100k_data):
    """A run in this process leaves TensorBoard's writer closed: reopened by the hparams written after the
    test, it used to flush its buffered events into the run folder later, after the run had returned and
    released the folder (a test hashing the folder around a second command caught it under load)."""

    class KeepTrainer(Callback):
        def on_fit_start(self, trainer, pl_module):
            self.trainer = trainer

    keep = KeepTrainer()
    cfg = load_config(None, small_overrides(tmp_path, "train.epochs=1", "train.limit_train_batches=2",
                                            "eval.popularity_buckets=0"))
    run_experiment(cfg, tmp_path / "run", enable_progress_bar=False, data=ml100k_data, callbacks=[keep])
    writer = keep.trainer.logger.experiment  # torch's SummaryWriter: close() drops its file writers
    assert writer.file_writer is None and writer.all_writers is None
