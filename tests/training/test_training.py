"""Real training on ml-100k: models learn (beat popularity), every loss runs, bad inputs fail cleanly."""
import json

import pytest
import torch

from cva_rec.config.schema import load_config
from cva_rec.errors import CheckpointError, DataError
from cva_rec.training.evaluation import metrics_from_ranks, target_ranks
from cva_rec.training.run import run_experiment
from tests.conftest import small_overrides


def popularity_ndcg10(data):
    """NDCG@10 of ranking every user's candidates by training popularity (history masked)."""
    ranks = []
    for batch_idx in [list(range(data.test.sample_size))]:
        inter, _, _, targets = data.test.collate_fn(batch_idx)
        users = inter[data.dataset.uid_field]
        scores = data.item_popularity.expand(len(users), -1).clone()
        rows, items = data.test_history.index_pairs(users.numpy())
        ranks.append(target_ranks(scores, targets, (rows, items)))
    return metrics_from_ranks(torch.cat(ranks), ["ndcg"], [10])["ndcg@10"]


def test_sasrec_learns_and_writes_run_dir(tmp_path, ml100k_data):
    # 2 x 45 batches at lr 0.003 reach the full 2 epochs' NDCG@10 (0.066 vs 0.066 at lr 0.001, measured) at half
    # the cost; popularity is 0.045, 30 batches per epoch only just beat it
    cfg = load_config(None, small_overrides(tmp_path, "train.epochs=2", "train.limit_train_batches=45", "train.lr=0.003"))
    metrics = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False, data=ml100k_data)
    assert metrics["test"]["n_users"] == 943
    assert metrics["test"]["ndcg@10"] > popularity_ndcg10(ml100k_data)
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert json.loads((run / "metrics.json").read_text())["test"]["ndcg@10"] == metrics["test"]["ndcg@10"]
    assert list((run / "tb").glob("events.out.tfevents*"))
    assert set(metrics["test"]["popularity_levels"]) == {str(i) for i in range(1, 11)}

    from cva_rec.training.evaluate import evaluate_run

    again = evaluate_run(run, progress=False)
    assert abs(again["ndcg@10"] - metrics["test"]["ndcg@10"]) < 1e-9

    corrupt = run / "checkpoints" / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        evaluate_run(run, str(corrupt), progress=False)
    with pytest.raises(CheckpointError, match="not found"):
        evaluate_run(run, str(run / "nope.ckpt"), progress=False)


@pytest.mark.parametrize("loss", ["inbatch_softmax", "sampled_softmax"])
def test_candidate_losses_train(tmp_path, ml100k_data, loss):
    cfg = load_config(None, small_overrides(tmp_path, f"loss.name={loss}", "train.limit_train_batches=8", "eval.popularity_buckets=0"))
    metrics = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False, data=ml100k_data)
    assert 0.0 <= metrics["test"]["hr@10"] <= 1.0 and metrics["epochs_trained"] == 1


@pytest.mark.parametrize("model", ["GRU4Rec", "NextItNet"])
def test_other_backbones_train(tmp_path, model):
    # RecBole's Config carries the model's hyper-parameters, so the data is built per model
    cfg = load_config(None, small_overrides(tmp_path, f"model.name={model}", "train.limit_train_batches=8", "eval.popularity_buckets=0"))
    metrics = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False)
    assert 0.0 <= metrics["test"]["hr@10"] <= 1.0 and metrics["epochs_trained"] == 1


def test_too_few_interactions(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    rows = ["user_id:token\titem_id:token\ttimestamp:float"] + [f"u{u}\ti{i}\t{i}" for u in range(2) for i in range(4)]
    (folder / "tiny.inter").write_text("\n".join(rows) + "\n")
    cfg = load_config(None, [f"dataset.name=tiny", f"dataset.data_path={tmp_path}", f"output.dir={tmp_path}"])
    from cva_rec.data.dataset import build_data

    with pytest.raises(DataError, match="too few"):
        build_data(cfg)


def test_cli_prints_one_line_errors(capsys):
    from cva_rec.cli.main import main

    assert main(["train", "--set", "train.epochs=1"]) == 2
    assert main(["train", "-c", "recipes/ml100k/sasrec_id.yaml", "--set", "dataset.data_path=/nonexistent"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("cva-rec train: error:") for line in err)
    assert "dataset file not found" in err[1]
