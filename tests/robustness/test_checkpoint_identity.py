"""A checkpoint is used only by the run it belongs to: its config and its dataset are recorded in it.

Two runs of one model on a tiny dataset (60 users, 40 items) have checkpoints of the same shapes; each
test hands one run's checkpoint to another run's folder (``evaluate``, ``evaluate --checkpoint``, a
resume, a warm-up seed) and expects exit 2 with one line naming what differs, the folder unchanged.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.robustness.conftest import folder_hash, write_tiny


def settings(data: Path, out_dir: Path, *extra: str) -> list:
    s = ["dataset.name=tiny", f"dataset.data_path={data}", "dataset.max_seq_length=5", "dataset.min_user_interactions=3",
         "train.epochs=1", "train.batch_size=64", "train.early_stopping_patience=0", "eval.popularity_buckets=0",
         "model.hidden_size=8", "model.n_layers=1", f"output.dir={out_dir}", "output.name=run", *extra]
    return ["-c", str(data / "recipe.yaml"), *(a for x in s for a in ("--set", x))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders of one model: ``a`` (seed 1), ``seed2`` (seed 2), ``other_data`` (same item count,
    other item tokens, another data folder); trained once per module."""
    from cva_rec.cli.main import main

    root = tmp_path_factory.mktemp("identity")
    data, other = write_tiny(root / "data"), write_tiny(root / "other", item_prefix="j")
    out = {}
    for name, path, extra in (("a", data, ["train.seed=1"]), ("seed2", data, ["train.seed=2"]),
                              ("other_data", other, ["train.seed=1"])):
        assert main(["train", "--no-progress", *settings(path, root / name, *extra)]) == 0
        out[name] = root / name / "run"
    out["data"] = data
    return out


def copy_run(runs, tmp_path, name: str = "a") -> Path:
    dst = tmp_path / "copy" / name
    shutil.copytree(runs[name], dst)
    return dst


@pytest.mark.parametrize("foreign, fragment", [
    ("seed2", "belongs to another run than the run folder"),
    ("other_data", "belongs to another run than the run folder"),
])
def test_a_foreign_best_ckpt_of_the_same_shape_is_refused_naming_what_differs(cli, runs, tmp_path, foreign, fragment):
    run = copy_run(runs, tmp_path)
    shutil.copyfile(runs[foreign] / "checkpoints" / "best.ckpt", run / "checkpoints" / "best.ckpt")
    # the same shapes: without the identity the foreign weights would load and be scored
    theirs = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    ours = torch.load(runs["a"] / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert {k: v.shape for k, v in theirs.items()} == {k: v.shape for k, v in ours.items()}
    before = folder_hash(run)
    result = cli("evaluate", str(run), "--no-progress")
    result.assert_one_line_error(fragment)
    named = "train.seed 2 -> 1" if foreign == "seed2" else "dataset.data_path"
    assert named in result.err
    assert folder_hash(run) == before


def test_a_foreign_checkpoint_option_is_refused(cli, runs, tmp_path):
    run = copy_run(runs, tmp_path)
    before = folder_hash(run)
    cli("evaluate", str(run), "--no-progress", "--checkpoint", str(runs["seed2"] / "checkpoints" / "best.ckpt"),
        "--out", str(tmp_path / "eval")).assert_one_line_error("config differs: train.seed 2 -> 1")
    assert folder_hash(run) == before and not (tmp_path / "eval").exists()


def test_a_dataset_changed_on_disk_since_training_is_refused(cli, tmp_path):
    """Same config, same item count, other item tokens: the run's own checkpoint no longer fits the data."""
    data = write_tiny(tmp_path / "data")
    assert cli("train", "--no-progress", *settings(data, tmp_path / "out")).code == 0
    run = tmp_path / "out" / "run"
    write_tiny(data, item_prefix="k")  # re-exported with other item ids: the same shapes
    before = folder_hash(run / "checkpoints"), (run / "metrics.json").read_bytes()
    result = cli("evaluate", str(run), "--no-progress", "--out", str(tmp_path / "eval"))
    result.assert_one_line_error("was trained on another dataset (item tokens sha256 ")
    assert (folder_hash(run / "checkpoints"), (run / "metrics.json").read_bytes()) == before


def test_a_shape_mismatch_is_one_line(cli, runs, tmp_path):
    run = copy_run(runs, tmp_path)
    before = folder_hash(run)
    result = cli("evaluate", str(run), "--no-progress", "--set", "model.hidden_size=16", "--out", str(tmp_path / "eval"))
    result.assert_one_line_error("does not fit this model: ")
    assert "has shape [" in result.err and "in the model its config builds" in result.err
    assert folder_hash(run) == before


def test_a_checkpoint_without_identity_is_evaluated_with_a_warning(cli, runs, tmp_path, caplog):
    from cva_rec.training.run_identity import IDENTITY_KEY

    run = copy_run(runs, tmp_path)
    ckpt = run / "checkpoints" / "best.ckpt"
    state = torch.load(ckpt, weights_only=True)
    del state[IDENTITY_KEY]
    torch.save(state, ckpt)
    with caplog.at_level("WARNING", logger="cva_rec"):
        assert cli("evaluate", str(run), "--no-progress", "--out", str(tmp_path / "eval")).code == 0
    assert any("records no run identity" in r.getMessage() for r in caplog.records)


def test_resume_from_a_foreign_last_ckpt_is_refused(cli, runs, tmp_path):
    run = copy_run(runs, tmp_path)
    shutil.copyfile(runs["seed2"] / "checkpoints" / "last.ckpt", run / "checkpoints" / "last.ckpt")
    (run / "metrics.json").unlink()  # an interrupted run: resume continues from last.ckpt
    result = cli("train", "--no-progress", *settings(runs["data"], run.parent, "train.seed=1", "train.resume=true",
                                                       "train.epochs=2"), "--run-dir", str(run))
    result.assert_one_line_error("belongs to another run than the run reading it (config differs: train.seed 2 -> 1)")
    assert not (run / "metrics.json").exists()


def test_a_warmup_seed_of_other_data_is_refused(tmp_path):
    from cva_rec.config.schema import load_config
    from cva_rec.errors import CheckpointError
    from cva_rec.training.run_identity import RunIdentity, dataset_fingerprint
    from cva_rec.warmup.runner import load_seed, save_seed

    def data(prefix):
        return SimpleNamespace(item_tokens=["[PAD]", *(f"{prefix}{i}" for i in range(40))], config={"dataset": "tiny"})

    stage = tmp_path / "0-id"
    stage.mkdir()
    cfg = load_config(None, ["train.seed=3"])
    (stage / "config.yaml").write_text("train: {seed: 3}\n")
    seed = save_seed(torch.nn.Linear(2, 2), stage / "seed.pt", RunIdentity(cfg, data("i")))
    assert set(load_seed(seed, dataset_fingerprint(data("i")))) == {"weight", "bias"}
    with pytest.raises(CheckpointError, match=r"warmup seed .* was trained on another dataset \(item tokens sha256"):
        load_seed(seed, dataset_fingerprint(data("j")))
    (stage / "config.yaml").write_text("train: {seed: 4}\n")  # a seed moved into another stage's folder
    with pytest.raises(CheckpointError, match=r"config differs: train.seed 3 -> 4"):
        load_seed(seed, dataset_fingerprint(data("i")))
