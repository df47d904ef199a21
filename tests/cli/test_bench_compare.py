"""`cva-rec bench compare`: a table trained end to end at a tiny budget (ml-100k recipes written here), resumable,
with compare.json's paired intervals against the runs' per-user files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cva_rec.cli.main import main

TINY = ["--seeds", "1", "2", "--max-epochs", "1", "--set", "train.limit_train_batches=3", "--resamples", "200"]


@pytest.fixture
def recipes(tmp_path, ml100k_text_store, ml100k_subset):
    """ml-100k's users 1-100 (each of the four runs is a process that loads its data; the table's plumbing is
    the point) with the content of every ml-100k item."""
    from tests.conftest import ML100K_SUBSET

    folder = tmp_path / "recipes"
    folder.mkdir()
    base = ("model: {name: SASRec, hidden_size: 32, embedding_size: 32}\n"
            f"dataset: {{name: {ML100K_SUBSET}, data_path: {ml100k_subset}, max_seq_length: 10}}\n"
            "loss: {name: inbatch_softmax}\n"
            "train: {batch_size: 512, early_stopping_patience: 2}\n"
            "eval: {popularity_buckets: 0}\n")
    (folder / "cva_base.yaml").write_text(base + f"content: {{store: {ml100k_text_store}}}\nitem_encoder: {{name: cva, depth: 2}}\n")
    (folder / "sasrec_id.yaml").write_text(base + "item_encoder: {name: id}\n")
    return folder


def test_compare_trains_resumes_and_pairs_with_id(tmp_path, recipes, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    args = ["bench", "compare", "--", "--table", "encoders", "--variants", "pooling", "--recipes", str(recipes),
            "--runs", str(tmp_path / "runs"), *TINY]
    runs = tmp_path / "runs" / "encoders"
    monkeypatch.chdir(tmp_path)  # a cache written relative to the working directory would show up here
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "delta NDCG@10 [95% CI]" in out and "reference" in out
    # the aligned-content cache goes with the runs, never into the recipe's own output.dir
    assert (runs / ".content_cache").is_dir() and not (tmp_path / "runs" / ".content_cache").exists()
    result = json.loads((runs / "compare.json").read_text())
    assert result["table"] == "encoders" and result["command"].startswith("cva-rec bench compare") and result["machine"]["cpus"]
    assert "train.early_stopping_patience=5" in result["budget"] and result["max_epochs"] == 1
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"id", "pooling"} and rows["id"]["seeds"] == [1, 2]
    assert rows["pooling"]["metrics"]["all"]["ndcg@10"]["mean"] == pytest.approx(
        np.mean([json.loads((runs / f"pooling-s{s}" / "metrics.json").read_text())["test"]["ndcg@10"] for s in (1, 2)]))
    # the interval's centre from the per-user files, read here with numpy: mean over users of the seed-mean difference
    nd = lambda r: np.where(r < 10, 1 / np.log2(r + 2.0), 0.0)  # noqa: E731

    def per_user(name):
        files = [np.load(runs / f"{name}-s{s}" / "per_user_test.npz") for s in (1, 2)]
        orders = [np.argsort(f["user_token"]) for f in files]
        return np.mean([nd(f["rank"][o]) for f, o in zip(files, orders)], axis=0)

    delta = rows["pooling"]["delta_vs_reference"]["all ndcg@10"]
    assert delta["delta"] == pytest.approx(float((per_user("pooling") - per_user("id")).mean()), abs=1e-12)
    assert delta["low"] <= delta["delta"] <= delta["high"] and delta["n_users"] == 100
    assert rows["id"]["epochs_trained"] == [1, 1]
    # a second call trains nothing: the finished folders are read
    before = (runs / "pooling-s1" / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0
    assert "[compare]" not in capsys.readouterr().out
    assert (runs / "pooling-s1" / "metrics.json").stat().st_mtime_ns == before
    # another budget on the same folders is refused before anything runs
    assert main([*args[:-len(TINY)], "--seeds", "1", "--max-epochs", "2", "--set", "train.limit_train_batches=3"]) == 2
    assert "another config" in capsys.readouterr().err


def test_unknown_variant_is_one_line(tmp_path, capsys):
    assert main(["bench", "compare", "--", "--table", "encoders", "--variants", "nope", "--runs", str(tmp_path)]) == 2
    assert "not a variant of table encoders" in capsys.readouterr().err


@pytest.mark.parametrize("table", ["idfree", "encoders", "backbones"])
def test_every_variant_of_a_table_is_a_valid_config_at_the_convergence_budget(table, tmp_path):
    from cva_rec.benchmarks import bench_compare, bench_idfree
    from cva_rec.config.schema import load_config
    from cva_rec.warmup.runner import stage_config
    from cva_rec.warmup.stages import STAGES
    from tests.conftest import REPO

    _, recipes, reference, defaults, variants = bench_compare.TABLES[table]
    budget, chain = bench_compare.budget_of(100, 5, [], recipe_limits=table in bench_compare.RECIPE_LIMITS,
                                            protocol=bench_compare.PROTOCOLS.get(table, ()))
    assert reference in defaults
    for name in defaults:
        command, recipe, sets = bench_idfree.variant_command(name, 2020, tmp_path, REPO / recipes, budget, chain, variants=variants)
        cfg = load_config(recipe, sets)
        assert cfg["train"]["early_stopping_patience"] == 5 and cfg["eval"]["valid_metric"] == "ndcg@10"
        if table != "backbones":  # the all-positions protocol, the same for every variant (backbones: in its recipes)
            assert cfg["loss"]["name"] == "microlens_inbatch" and cfg["train"]["batch_size"] == 64
            assert cfg["dataset"]["max_seq_length"] == 50 and cfg["train"]["lr"] == 0.001
        if command == "train":
            assert cfg["train"]["epochs"] == 100
            stage_encoders = [cfg["item_encoder"]]
        else:  # the FLUID chain: its stages converge alike, each on the same protocol
            assert cfg["warmup"]["id_epochs"] == cfg["warmup"]["room_epochs"] == 100
            stage_encoders = [stage_config(cfg, STAGES[s], tmp_path, i)["item_encoder"] for i, s in enumerate(cfg["warmup"]["stages"])]
        for enc in stage_encoders:  # the all-positions objective needs one token per item: one kind, or kinds summed
            assert enc["name"] != "lucid" or enc["fusion"] == "early" or len(enc["tokens"]) == 1, (name, enc)
        if table == "encoders":
            assert cfg["dataset"]["name"] == "ml-1m" and (cfg["content"]["store"] is None) == (name == "id")
        elif table == "backbones":
            assert cfg["dataset"]["name"] == "ml-1m" and cfg["item_encoder"]["name"] == "id" and cfg["content"]["store"] is None
            # the label names the positions trained; an epoch of prefix rows is a twentieth of them, validated after it
            prefix = cfg["loss"]["name"] == "full_softmax"
            assert ("prefix rows" in variants[name][0]) == prefix
            assert cfg["train"]["limit_train_batches"] == (0.05 if prefix else None)
            assert cfg["loss"]["name"] in ("allpos_full_softmax", "window_cloze", "full_softmax")
        else:
            assert cfg["dataset"]["cold_items"] == 0.1
        if table != "backbones":
            assert cfg["train"]["limit_train_batches"] is None


def test_backbones_grid_trains_the_runs_of_the_bench(tmp_path):
    """grid_backbones_id.yaml (cva-rec sweep) and `bench compare --table backbones` give every backbone one config."""
    from cva_rec.benchmarks import bench_compare, bench_idfree
    from cva_rec.config.schema import load_config
    from cva_rec.jobs.sweep import expand, load_grid
    from tests.conftest import REPO

    _, recipes, _, defaults, variants = bench_compare.TABLES["backbones"]
    max_epochs, patience = bench_compare.DEFAULT_BUDGET["backbones"]
    budget, chain = bench_compare.budget_of(max_epochs, patience, [], recipe_limits=True)
    swept = {run.variant: run.config for run in expand(load_grid(REPO / recipes / "grid_backbones_id.yaml"), tmp_path)}
    assert sorted(swept) == sorted(defaults)
    for name in defaults:
        _, recipe, sets = bench_idfree.variant_command(name, 2020, tmp_path, REPO / recipes, budget, chain, variants=variants)
        bench = load_config(recipe, sets)
        assert {k: v for k, v in bench.items() if k != "output"} == {k: v for k, v in swept[name].items() if k != "output"}, name


def test_backbones_table_from_finished_runs(tmp_path, capsys):
    """--table-only on finished folders: no warm / cold columns without held-out items, intervals against SASRec
    from the per-user files (checked here with numpy), the budget the recipes' epoch fractions keep, the load."""
    from cva_rec.benchmarks import bench_compare

    runs = tmp_path / "runs" / "backbones"
    rng = np.random.default_rng(0)
    tokens = np.array([str(u) for u in range(1, 201)])
    ranks = {"sasrec": rng.integers(0, 30, 200), "narm": rng.integers(0, 60, 200)}
    for name, rank in ranks.items():
        run = runs / f"{name}-s2020"
        run.mkdir(parents=True)
        np.savez(run / "per_user_test.npz", user=np.arange(200), user_token=tokens, target=np.ones(200, dtype=np.int64), rank=rank,
                 cold=np.zeros(200, dtype=bool), n_candidates=np.full(200, 3000))
        ndcg = float(np.where(rank < 10, 1 / np.log2(rank + 2.0), 0).mean())
        (run / "metrics.json").write_text(json.dumps({"seed": 2020, "test": {"ndcg@10": ndcg, "hr@10": float((rank < 10).mean()),
                                                                              "n_users": 200}, "valid": {"epoch": 4},
                                                     "epochs_trained": 8, "seconds_per_epoch": 12.5,
                                                     # sasrec: converged; narm: a time budget ended it before max_epochs
                                                     "stopped_by": "early_stopping" if name == "sasrec" else "max_minutes",
                                                     "artifacts": {"dataset": {"sha256": name}}}))
        (run / "bench_wall.json").write_text(json.dumps({"wall_s": 100.0, "resumed": False, "load_average_at_end": [3.0, 2.5, 2.0]}))
    args = ["--table", "backbones", "--variants", "narm", "--seeds", "2020", "--runs", str(tmp_path / "runs"),
            "--table-only", "--resamples", "200"]
    assert bench_compare.main(args) == 0
    out = capsys.readouterr().out
    assert "cold" not in out.split("\n")[1] and "| SASRec (all positions) | 1 |" in out and "| NARM (prefix rows) | 1 |" in out
    result = json.loads((runs / "compare.json").read_text())
    assert result["max_epochs"] == 50 and result["patience"] == 3 and result["reference"] == "sasrec"
    assert not any("limit_train_batches" in s for s in result["budget"])  # the recipes' fractions are the protocol
    rows = {r["variant"]: r for r in result["rows"]}
    nd = {k: np.where(r < 10, 1 / np.log2(r + 2.0), 0.0) for k, r in ranks.items()}
    delta = rows["narm"]["delta_vs_reference"]["all ndcg@10"]
    assert delta["delta"] == pytest.approx(float((nd["narm"] - nd["sasrec"]).mean()), abs=1e-12)
    assert "cold ndcg@10" not in rows["narm"]["delta_vs_reference"]
    assert rows["narm"]["wall"][0]["load_average_at_end"] == [3.0, 2.5, 2.0] and rows["narm"]["epochs_trained"] == [8]
    # stopped before max_epochs by a time budget is not convergence; fingerprints come from metrics.json's artifacts
    assert rows["sasrec"]["stopped_early"] == [True] and rows["narm"]["stopped_early"] == [False]
    assert rows["narm"]["stopped_by"] == ["max_minutes"] and rows["narm"]["fingerprints"] == [{"dataset": {"sha256": "narm"}}]
    assert "| 8 (4) not converged |" in out and "| 8 (4) |" in out
