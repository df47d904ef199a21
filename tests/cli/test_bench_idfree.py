"""``cva-rec bench idfree``'s table from finished run folders: means, stds and ratios by hand."""
from __future__ import annotations

import json

from cva_rec.benchmarks import project_root
from cva_rec.benchmarks.bench_idfree import table

RECIPES = project_root() / "recipes" / "ml1m"


def _run(folder, all_ndcg, cold_hr20, wall=None):
    folder.mkdir(parents=True)
    test = {"ndcg@10": all_ndcg, "hr@10": 0.2, "hr@20": 0.3,
            "warm": {"n_users": 90, "ndcg@10": 0.1, "hr@10": 0.2, "hr@20": 0.3},
            "cold": {"n_users": 10, "ndcg@10": 0.0, "hr@10": 0.0, "hr@20": cold_hr20}}
    (folder / "metrics.json").write_text(json.dumps({"test": test}))
    if wall is not None:
        (folder / "bench_wall.json").write_text(json.dumps({"wall_s": wall}))


def test_table_by_hand(tmp_path):
    _run(tmp_path / "id-s1", 0.10, 0.0, wall=60)
    _run(tmp_path / "id-s2", 0.12, 0.0, wall=120)
    _run(tmp_path / "idfree-s1", 0.09, 0.05)
    _run(tmp_path / "idfree-s2", 0.09, 0.15)
    (tmp_path / "idfree-s1" / "eval-zero").mkdir()
    (tmp_path / "idfree-s1" / "eval-zero" / "eval_test_best.json").write_text(
        json.dumps({"ndcg@10": 0.055, "cold": {"n_users": 10, "hr@20": 0.2}}))
    lines = table(tmp_path, ["idfree", "id"], [1, 2]).splitlines()
    idfree, zero, id_row = (line.split(" | ") for line in lines[2:5])
    assert idfree[1] == "2" and idfree[2] == "0.0900 +- 0.0000"
    assert idfree[-4] == "0.82x" and idfree[-3] == "inf"  # 0.09 / 0.11; cold hr@20 0.10 / 0.0
    assert idfree[-1].startswith("10")
    assert zero[1] == "1" and zero[2] == "0.0550" and zero[-3] == "inf" and zero[-2] == "-"
    assert id_row[2] == "0.1100 +- 0.0141" and id_row[-4] == "1.00x" and id_row[-3] == "0/0" and id_row[-2] == "1.5"
    assert len(lines) == 5  # the rows-all rule has no folder: no row


def test_chain_rows_are_stage_means_over_seeds_and_the_plot_is_written(tmp_path):
    _run(tmp_path / "id-s1", 0.10, 0.0)
    _run(tmp_path / "id-s2", 0.10, 0.0)
    for seed, (a, b) in ((1, (0.10, 0.06)), (2, (0.12, 0.08))):
        _run(tmp_path / f"fluid-s{seed}", b, 0.02)
        stages = [{"stage": name, "test": {"ndcg@10": v, "cold": {"n_users": 10, "ndcg@10": 0.01, "hr@20": 0.02}}}
                  for name, v in (("id", a), ("phase_out", b))]
        (tmp_path / f"fluid-s{seed}" / "stages.json").write_text(json.dumps({"stages": stages}))
    lines = table(tmp_path, ["fluid"], [1, 2]).splitlines()
    final, id_stage, out_stage = (line.split(" | ") for line in lines[2:5])
    assert final[2] == "0.0700 +- 0.0141" and final[-4] == "0.70x"
    assert id_stage[0].endswith("chain stage: id") and id_stage[2] == "0.1100 +- 0.0141" and id_stage[-4] == "1.10x"
    assert out_stage[0].endswith("chain stage: phase_out") and out_stage[2] == "0.0700 +- 0.0141"
    from cva_rec.benchmarks.bench_idfree import plot_chain

    plot_chain(tmp_path, [1, 2], tmp_path / "chain.png")
    assert (tmp_path / "chain.png").read_bytes()[:4] == b"\x89PNG"


def test_ablation_rows_are_the_stages_it_trained(tmp_path):
    """An ablation's rows are the stages it retrained (the reused ones are the chain's), by hand."""
    _run(tmp_path / "id-s1", 0.10, 0.0)
    _run(tmp_path / "room_e2-s1", 0.09, 0.01, wall=300)
    stages = [{"stage": name, "test": {"ndcg@10": v, "cold": {"n_users": 10, "ndcg@10": 0.0, "hr@20": 0.01}}}
              for name, v in (("id", 0.10), ("slice", 0.095), ("phase_out", 0.07), ("room", 0.09))]
    (tmp_path / "room_e2-s1" / "stages.json").write_text(json.dumps({"stages": stages}))
    lines = table(tmp_path, [], [1], ["room_e2"]).splitlines()
    assert len(lines) == 3, lines  # header, rule, one row: only the room stage was trained
    row = lines[2].split(" | ")
    assert row[0].endswith("chain, room stage 2 epochs: room") and row[2] == "0.0900" and row[-4] == "0.90x"
    assert row[-2] == "5.0"  # its wall time, on the stage it ends with


def _trained(runs, name, seed, budget, chain=()):
    """The config.yaml ``bench idfree`` writes for (variant, seed) at this budget (the recipe as shipped)."""
    from cva_rec.benchmarks.bench_idfree import variant_command
    from cva_rec.config.schema import dump_config, load_config

    _, recipe, sets = variant_command(name, seed, runs, RECIPES, budget, chain)
    (runs / f"{name}-s{seed}").mkdir(parents=True, exist_ok=True)
    dump_config(load_config(recipe, sets), runs / f"{name}-s{seed}" / "config.yaml")


def test_a_folder_trained_at_another_budget_is_refused_before_anything_runs(tmp_path):
    """A finished folder is read, not retrained: asking for another budget must not print its figures
    under the new budget's header (nor train the other variants first)."""
    import pytest

    from cva_rec.benchmarks.bench_idfree import main

    _run(tmp_path / "id-s1", 0.10, 0.0)
    _trained(tmp_path, "id", 1, ["train.epochs=3", "train.limit_train_batches=0.25"])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit, match=r"id-s1 was trained with another config.*train\.epochs 3 -> 7"):
        main(["--runs", str(tmp_path), "--variants", "id", "idfree", "--seeds", "1",
              "--budget", "train.epochs=7", "train.limit_train_batches=0.25"])
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing trained, nothing written
    # the budget it was trained with reads it; keys that do not change the result do not count
    assert main(["--runs", str(tmp_path), "--variants", "id", "--seeds", "1", "--table-only",
                 "--budget", "train.epochs=3", "train.limit_train_batches=0.25", "train.num_workers=2",
                 "eval.batch_size=128"]) == 0


def test_an_ablation_is_checked_against_the_chain_and_its_own_choice(tmp_path):
    from cva_rec.benchmarks.bench_idfree import CHAIN, budget_mismatch

    _trained(tmp_path, "room_e2", 1, ["train.epochs=3"], CHAIN)
    # the ablation's room_epochs=2 wins over the chain's 1
    assert budget_mismatch("room_e2", 1, tmp_path, RECIPES, ["train.epochs=3"], CHAIN) == []
    assert budget_mismatch("room_e2", 1, tmp_path, RECIPES, ["train.epochs=3"], [*CHAIN, "warmup.id_epochs=7"]) == [
        "warmup.id_epochs 3 -> 7"]


def test_the_cli_prints_a_benchmark_stop_as_one_line(tmp_path):
    import subprocess
    import sys

    _run(tmp_path / "id-s1", 0.10, 0.0)
    _trained(tmp_path, "id", 1, ["train.epochs=3", "train.limit_train_batches=0.25"])
    out = subprocess.run([sys.executable, "-m", "cva_rec.cli.main", "bench", "idfree", "--", "--table-only",
                          "--runs", str(tmp_path), "--variants", "id", "--seeds", "1", "--budget", "train.epochs=7"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        f"cva-rec bench: error: {tmp_path / 'id-s1'} was trained with another config than asked "
        "(train.epochs 3 -> 7; train.limit_train_batches 0.25 -> None): pass the --budget / --chain it was trained with, "
        "or another --runs folder"]
