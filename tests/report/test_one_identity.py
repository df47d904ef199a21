"""One rule decides whether two configs are the same experiment: run folders, sweeps, Optuna, ``report``,
``bench idfree`` and ``warmup.reuse_run`` give the same verdict on the same pair of configs."""
from __future__ import annotations

import json

import pytest

from cva_rec.config.schema import dump_config, load_config
from cva_rec.errors import ConfigError, RunFolderError

# (override, same experiment?): DataLoader workers and the evaluation batch change no result; epochs do
CASES = [("train.num_workers=3", True), ("eval.batch_size=128", True), ("train.epochs=7", False), ("train.lr=0.01", False)]


def finished_run(folder, cfg, seed=1):
    """A run folder as ``cva-rec train`` leaves it: config.yaml and metrics.json."""
    folder.mkdir(parents=True)
    dump_config(cfg, folder / "config.yaml")
    (folder / "metrics.json").write_text(json.dumps({"seed": seed, "model": "SASRec", "item_encoder": "id",
                                                     "test": {"ndcg@10": 0.1, "hr@10": 0.2}}))
    return folder


def run_folder_verdict(tmp_path, old, new) -> bool:
    from cva_rec.jobs.run_folder import claim_run_folder

    run = finished_run(tmp_path / "folder", old)
    with pytest.raises(RunFolderError) as refused:  # a finished run is never silently trained again
        claim_run_folder(run, new)
    return "of this config" in str(refused.value)


def sweep_verdict(tmp_path, old, new) -> bool:
    from cva_rec.jobs.sweep import SweepRun

    run = finished_run(tmp_path / "sweep", old)
    return SweepRun("sweep", [], None, run, new).other_config() is None


def optuna_verdict(tmp_path, old, new) -> bool:
    from cva_rec.jobs.optuna_search import _check_folder
    from cva_rec.jobs.sweep import SweepRun

    run = finished_run(tmp_path / "trial", old)
    try:
        _check_folder(SweepRun("trial", [], None, run, new))
    except RunFolderError:
        return False
    return True


def report_verdict(tmp_path, old, new) -> bool:
    """``report`` groups runs that differ only by seed: one group when they are the same experiment."""
    from cva_rec.report.collect import group_runs, scan_runs

    old = {**old, "train": {**old["train"], "seed": 1}}
    new = {**new, "train": {**new["train"], "seed": 2}}
    finished_run(tmp_path / "report" / "a", old, seed=1)
    finished_run(tmp_path / "report" / "b", new, seed=2)
    return len(group_runs(scan_runs(tmp_path / "report"))) == 1


def reuse_verdict(tmp_path, old, new) -> bool:
    """``warmup.reuse_run``: a finished stage of another warmup folder, checked against this chain's."""
    from cva_rec.warmup.runner import _check_reused_config
    from cva_rec.warmup.stages import STAGES

    stage = finished_run(tmp_path / "reuse" / "0-id", old)
    try:
        _check_reused_config(stage, new, STAGES["id"])
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("override, same", CASES)
def test_every_consumer_gives_the_same_verdict(tmp_path, override, same):
    from cva_rec.config.identity import config_id, same_experiment

    old = load_config(None, ["train.epochs=3"])
    new = load_config(None, ["train.epochs=3", override])
    assert same_experiment(old, new) is same and (config_id(old) == config_id(new)) is same
    verdicts = {name: check(tmp_path, old, new) for name, check in [
        ("run folder", run_folder_verdict), ("sweep", sweep_verdict), ("optuna", optuna_verdict),
        ("report", report_verdict), ("warmup.reuse_run", reuse_verdict)]}
    assert verdicts == dict.fromkeys(verdicts, same)


@pytest.mark.parametrize("override, same", CASES)
def test_bench_idfree_gives_the_same_verdict(tmp_path, override, same):
    from cva_rec.benchmarks import project_root
    from cva_rec.benchmarks.bench_idfree import budget_mismatch, variant_command

    recipes, budget = project_root() / "recipes" / "ml1m", ["train.epochs=3"]
    _, recipe, sets = variant_command("id", 1, tmp_path, recipes, budget, [])
    (tmp_path / "id-s1").mkdir()
    dump_config(load_config(recipe, sets), tmp_path / "id-s1" / "config.yaml")
    assert (budget_mismatch("id", 1, tmp_path, recipes, [*budget, override], []) == []) is same


def test_a_resumed_run_may_train_more_epochs_but_nothing_else(tmp_path):
    """Resuming continues the same run: more epochs are allowed (run folder and sweep alike), another lr is not."""
    from cva_rec.jobs.run_folder import claim_run_folder
    from cva_rec.jobs.sweep import SweepRun

    old = load_config(None, ["train.epochs=3"])
    run = tmp_path / "run"
    run.mkdir()
    dump_config(old, run / "config.yaml")  # started, not finished
    more = load_config(None, ["train.epochs=5", "train.resume=true"])
    with claim_run_folder(run, more):
        pass
    assert SweepRun("run", [], None, run, more).other_config() is None
    other = load_config(None, ["train.epochs=3", "train.lr=0.01", "train.resume=true"])
    with pytest.raises(RunFolderError, match="train.lr"):
        claim_run_folder(run, other)
    assert "train.lr" in SweepRun("run", [], None, run, other).other_config()
