"""One command per comparison table: every variant x seed trained to convergence, intervals over users.

``--table idfree``: the ml-1m item-cold-start split (``dataset.cold_items: 0.1``): the ID model, the ID +
content hybrid, ID-free from scratch and the FLUID chain ending ID-free (the variants of
``cva-rec bench idfree``, levels added: ``compose: sum``, one token per item: the hybrid's ID and room
vectors and the chain's ID, slice and room vectors are summed into one, ``fusion: early, early: sum``).
``--table encoders``: ml-1m with text content (MiniLM over title, year and genres): ID, Pooling, MLP,
Perceiver IO, CVA M=4 and M=8 (content only) and ID + CVA M=4 (``id_content``). ``--table backbones``:
ml-1m with the ID item encoder under each of the seven
backbones (SASRec, GRU4Rec, NextItNet, BERT4Rec, NARM, STAMP, FMLP-Rec; ``recipes/ml1m/backbones_id*.yaml``:
cross-entropy over all items, every window position for the causal ones, BERT4Rec's cloze on the same
windows, prefix rows for the others, each label says which), intervals against ID-SASRec.

Protocol of the idfree and encoders tables, the same for every run (:data:`PROTOCOLS`, recorded in
compare.json's ``budget``; the backbones table's recipes carry theirs): the
all-positions objective ``loss.name: microlens_inbatch``: a batch is 64 users, each contributing one window,
the last 51 items of its training part (``dataset.max_seq_length: 50``), and every position of it is trained
against the batch's item positions (logQ corrected, the user's own items masked), lr 1e-3. A held-out
item is never a candidate in training, as it is never a target (a full-catalogue softmax would push every
held-out item down at every step). One epoch is one window per user (6040 on ml-1m), not one prefix row
per interaction, so a run converges in minutes on a CPU. Validation and test rank the whole catalogue.

Convergence: every run keeps the epoch with the best validation NDCG@10 and stops after ``--patience``
validations without a better one, at most ``--max-epochs`` (the FLUID chain: its ID, slice and room stages
alike; its phase-out has its own fixed length); test metrics are the best epoch's weights. Each
(variant, seed) is a run folder ``RUNS/<table>/<variant>-s<seed>`` trained by ``cva-rec train`` / ``cva-rec warmup``
(:mod:`cva_rec.benchmarks.bench_idfree`): a finished folder is read, not retrained, an interrupted one
resumes, and a folder of another budget stops the call before anything runs. Feature stores and codes the
variants read are built first when absent (``cva-rec extract-text`` / ``cva-rec tokenize``).

Writes ``RUNS/<table>/compare.json`` (``RUNS``: ``runs/bench/compare``) (self-describing: command, machine, date, budget; per variant: mean and
std over seeds of NDCG@10 / HR@10 / HR@20 on all, warm and cold test users, the paired bootstrap interval
of the difference to the ID model over users (:mod:`cva_rec.report.bootstrap`), the expected metrics of a
random ranking for the cold users, epochs run and the best epoch, s/epoch, peak memory, and the runs'
fingerprints when metrics.json records them) and prints the table.

    cva-rec bench compare -- --table encoders                         # 3 seeds, to convergence (hours on a CPU)
    cva-rec bench compare -- --table idfree --seeds 2020 --variants id idfree_sum
    cva-rec bench compare -- --table encoders --table-only            # the table of what is there
    cva-rec bench compare -- --table backbones --seeds 2020          # seven backbones, ID items, one seed
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List


from cva_rec.benchmarks import bench_idfree, bench_output, project_root
from cva_rec.io import atomic_write_json
from cva_rec.report import bootstrap

_ML1M_ITEMS = "../shared/data/ml-1m/ml-1m.item"
_COLD_CODES = "data/codes/ml-1m-title-w2-aligned-cold10-4x64-distinct"
#: what builds a feature store / codes folder a variant reads, by the path the recipes name (in this order)
PREPARE = {
    "data/stores/ml-1m-text": ["extract-text", "--items", _ML1M_ITEMS, "--out", "data/stores/ml-1m-text"],
    "data/stores/ml-1m-title-w2": ["extract-text", "--items", _ML1M_ITEMS, "--out", "data/stores/ml-1m-title-w2",
                                   "--windows", "movie_title", "--window-words", "2"],
    _COLD_CODES: ["tokenize", "data/stores/ml-1m-title-w2", "--out", _COLD_CODES, "--align", "recipes/ml1m/cold_sasrec_id.yaml",
                  "--align-lr", "5e-3", "--align-epochs", "3", "--distinct"],
}

_id_cva = ["item_encoder.name=id_content", "item_encoder.content_encoder={name: cva, depth: 4}"]
_WINDOWS, _PREFIX = "backbones_id.yaml", "backbones_id_prefix.yaml"
#: the all-positions objective: one window of the last 51 training items per user, every position trained,
#: 64 users per batch, lr 1e-3
ALL_POSITIONS = ["loss.name=microlens_inbatch", "dataset.max_seq_length=50", "train.batch_size=64", "train.lr=0.001"]
#: one token per item (the all-positions objective needs it): the ID and the room code summed into one vector
_EARLY_SUM = ["item_encoder.fusion=early", "item_encoder.early=sum"]
#: the ID-free table's variants: those of ``cva-rec bench idfree``, each with one token per item
IDFREE_VARIANTS = {
    "id": bench_idfree.VARIANTS["id"],
    "hybrid_sum": ("ID + room, levels added, one token (early sum)", "cold_hybrid_sum.yaml", "train", _EARLY_SUM),
    "idfree_sum": bench_idfree.VARIANTS["idfree_sum"],
    "fluid": ("FLUID chain -> slice + room, ID deleted (early sum, levels added)", "cold_fluid.yaml", "warmup",
              [*_EARLY_SUM, "item_encoder.compose=sum"]),
}
#: table -> (what it compares, recipes folder under the checkout, reference variant, default variants, name -> variant)
TABLES: Dict[str, tuple] = {
    "idfree": ("ml-1m item cold start (10% of the items held out): ID, ID + content hybrid, ID-free, FLUID chain",
               "recipes/ml1m", "id", ["id", "hybrid_sum", "idfree_sum", "fluid"], IDFREE_VARIANTS),
    "encoders": ("ml-1m with text content (MiniLM over title, year, genres): ID and the item encoders",
                 "recipes/ml1m", "id", ["id", "pooling", "mlp", "perceiver_io", "cva_m4", "cva_m8", "id_cva_m4"], {
                     "id": ("ID SASRec", "sasrec_id.yaml", "train"),
                     "pooling": ("Pooling (content only)", "cva_base.yaml", "train", ["item_encoder.name=pooling"]),
                     "mlp": ("MLP (content only)", "sasrec_mlp.yaml", "train"),
                     "perceiver_io": ("Perceiver IO (content only)", "sasrec_perceiver_io.yaml", "train"),
                     "cva_m4": ("CVA M=4 (content only)", "cva_base.yaml", "train"),
                     "cva_m8": ("CVA M=8 (content only)", "sasrec_cva_m8.yaml", "train"),
                     "id_cva_m4": ("ID + CVA M=4 (id_content, sum)", "cva_base.yaml", "train", _id_cva),
                 }),
    "backbones": ("ml-1m, ID items: each backbone under one protocol (cross-entropy over all items; the label says "
                  "which positions are trained: every position of a user window, BERT4Rec's cloze on it, or prefix rows)",
                  "recipes/ml1m", "sasrec", ["sasrec", "gru4rec", "nextitnet", "bert4rec", "narm", "stamp", "fmlprec"], {
                      "sasrec": ("SASRec (all positions)", _WINDOWS, "train"),
                      "gru4rec": ("GRU4Rec (all positions)", _WINDOWS, "train", ["model.name=GRU4Rec"]),
                      "nextitnet": ("NextItNet (all positions)", _WINDOWS, "train", ["model.name=NextItNet"]),
                      "bert4rec": ("BERT4Rec (cloze on user windows)", _WINDOWS, "train",
                                   ["model.name=BERT4Rec", "loss.name=window_cloze"]),
                      "narm": ("NARM (prefix rows)", _PREFIX, "train"),
                      "stamp": ("STAMP (prefix rows)", _PREFIX, "train", ["model.name=STAMP"]),
                      "fmlprec": ("FMLP-Rec (prefix rows)", _PREFIX, "train", ["model.name=FMLPRec"]),
                  }),
}
#: (max epochs, patience) of a table when the command does not say
DEFAULT_BUDGET = {"backbones": (50, 3)}
#: tables whose recipes set train.limit_train_batches as part of the protocol (an epoch of prefix rows is a
#: fraction of them, validated after it); the other tables' budgets clear any limit a recipe sets
RECIPE_LIMITS = {"backbones"}
#: table -> the training protocol of every run of it (overrides before the budget); a table not named here
#: trains its recipes' own (the backbones table: one protocol per kind of backbone, in its recipes)
PROTOCOLS = {"idfree": ALL_POSITIONS, "encoders": ALL_POSITIONS}
PARTS = ("all", "warm", "cold")
METRICS = ("ndcg@10", "hr@10", "hr@20")
MAX_EPOCHS, PATIENCE = 100, 5
RESULT_FILE = "compare.json"


def budget_of(max_epochs: int, patience: int, extra, recipe_limits: bool = False, protocol=()) -> tuple:
    """(overrides of every run, FLUID stage lengths): the table's ``protocol`` (:data:`PROTOCOLS`), converged
    by validation NDCG@10 within ``max_epochs``; each epoch all the training batches, unless ``recipe_limits``
    (the recipes' ``train.limit_train_batches``)."""
    budget = [*protocol, f"train.epochs={max_epochs}", f"train.early_stopping_patience={patience}",
              "eval.valid_metric=ndcg@10", *([] if recipe_limits else ["train.limit_train_batches=null"]), *extra]
    chain = [f"warmup.id_epochs={max_epochs}", f"warmup.slice_epochs={max_epochs}", f"warmup.room_epochs={max_epochs}"]
    return budget, chain


def prepare_inputs(names, seeds, runs: Path, recipes: Path, budget, chain, variants) -> None:
    """Build the feature stores and codes the variants read that are absent (known paths only)."""
    from cva_rec.config.schema import load_config

    needed = set()
    for name in names:
        _, recipe, sets = bench_idfree.variant_command(name, seeds[0], runs, recipes, budget, chain, variants=variants)
        cfg = load_config(recipe, sets)
        store, codes = cfg["content"].get("store"), cfg["item_encoder"].get("codes_path")
        needed |= {p for p in (store, str(Path(codes).parent) if codes else None) if p}
    for path in [p for p in PREPARE if p in needed] + sorted(p for p in needed if p not in PREPARE):
        if Path(path).exists():
            continue
        if path not in PREPARE:
            raise SystemExit(f"{path} (read by a variant) does not exist and this benchmark does not know what builds it: "
                             "build it first (see the recipe's header)")
        cmd = [sys.executable, "-m", "cva_rec.cli.main", *PREPARE[path]]
        print(f"[compare] building {path}: cva-rec {' '.join(PREPARE[path])}", flush=True)
        subprocess.run(cmd, check=True)


def _metrics(run: Path) -> Dict[str, Any]:
    path = run / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _mean_std(values) -> Dict[str, Any]:
    values = [v for v in values if v is not None]
    return {"mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None, "per_seed": values}


def row_of(name: str, variants, runs: Path, seeds, max_epochs: int) -> Dict[str, Any]:
    """One variant's entry of compare.json (no interval yet)."""
    label, recipe, command, *more = variants[name]
    folders = [runs / f"{name}-s{s}" for s in seeds if (runs / f"{name}-s{s}" / "metrics.json").is_file()]
    ms = [_metrics(f) for f in folders]
    tests = [m.get("test", {}) for m in ms]
    row: Dict[str, Any] = {
        "variant": name, "label": label, "recipe": recipe, "command": command, "overrides": list(more[0]) if more else [],
        "seeds": [m.get("seed") for m in ms], "runs": [str(f) for f in folders],
        "metrics": {part: {m: _mean_std([(t if part == "all" else t.get(part, {})).get(m) for t in tests]) for m in METRICS}
                    for part in PARTS},
        "n_users": {part: (tests[0] if part == "all" else tests[0].get(part, {})).get("n_users") if tests else None for part in PARTS},
        "epochs_trained": [m.get("epochs_trained") for m in ms],
        "best_epoch": [(m.get("valid") or {}).get("epoch") for m in ms],
        "max_epochs": max_epochs,
        # converged by the patience rule: metrics.json's stopped_by where the run records it (a train.max_minutes
        # budget also ends a fit before max_epochs); older runs: fewer epochs than the maximum
        "stopped_by": [m.get("stopped_by") for m in ms],
        "stopped_early": [m["stopped_by"] == "early_stopping" if m.get("stopped_by")
                          else m.get("epochs_trained") is not None and m["epochs_trained"] < max_epochs for m in ms],
        "seconds_per_epoch": _mean_std([m.get("seconds_per_epoch") for m in ms]),
        # per seed: the command's wall time and the machine's load averages at its end (shared cores)
        "wall": [json.loads(w.read_text()) if (w := f / bench_idfree.WALL_FILE).is_file() else None for f in folders],
        "peak_memory_bytes": max([m.get("peak_memory_bytes") or 0 for m in ms], default=None),
        "peak_memory_kind": ms[0].get("peak_memory_kind") if ms else None,
        # the input files each run read, by content (metrics.json's artifacts: sha256 and size)
        "fingerprints": [m.get("artifacts") for m in ms] if any(m.get("artifacts") for m in ms) else None,
    }
    return row


def add_intervals(rows: List[Dict[str, Any]], reference: str, n_resamples: int) -> None:
    """Each row's paired bootstrap interval vs the reference (same users, same resamples for every row), per
    part, and the cold users' random-ranking baseline."""
    by_name = {r["variant"]: r for r in rows}
    ref_row = by_name.get(reference)
    if not ref_row or not ref_row["runs"]:
        return
    ref = bootstrap.load_runs([Path(p) for p in ref_row["runs"]])
    loaded = {r["variant"]: bootstrap.load_runs([Path(p) for p in r["runs"]]) for r in rows if r["runs"]}
    for part in PARTS:
        if part != "all" and not ref[0].cold.any():
            continue  # no held-out items: warm = all
        for metric in ("ndcg@10",):
            out = bootstrap.compare(ref, {k: v for k, v in loaded.items() if k != reference}, metric, part, n_resamples)
            for name, iv in out.items():
                by_name[name].setdefault("delta_vs_reference", {})[f"{part} {metric}"] = iv
    cold = ref[0].cold
    if cold.any():
        for r in rows:
            r["random_rank_cold"] = {m: float(bootstrap.random_rank_metric(ref[0].n_candidates[cold], m).mean()) for m in METRICS}


def markdown(rows: List[Dict[str, Any]], reference: str) -> str:
    # a table without held-out items (no warm / cold figures in any row) shows the all-users columns only
    parts = [p for p in PARTS if p == "all" or any(r["metrics"][p][m]["mean"] is not None for r in rows for m in METRICS)]
    cold = "cold" in parts
    head = ["variant", "seeds", *(f"{p} {m}" for p in parts for m in METRICS), "delta NDCG@10 [95% CI]",
            *(["cold delta NDCG@10 [95% CI]"] if cold else []), "epochs (best)", "s/epoch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], str(len(r["runs"]))]
        for p in parts:
            for m in METRICS:
                v = r["metrics"][p][m]
                cells.append("-" if v["mean"] is None else f"{v['mean']:.4f}" + (f" +- {v['std']:.4f}" if v["std"] is not None else ""))
        deltas = r.get("delta_vs_reference", {})
        ref_cell = "reference" if r["variant"] == reference else "-"
        cells.append(bootstrap.interval_cell(deltas.get("all ndcg@10")) if deltas else ref_cell)
        if cold:
            cells.append(bootstrap.interval_cell(deltas.get("cold ndcg@10")) if deltas.get("cold ndcg@10") else ref_cell)
        # a run that did not stop by the patience rule (max epochs or a time budget) is marked: not converged
        cells.append(", ".join(f"{e} ({b})" + ("" if done else " not converged")
                               for e, b, done in zip(r["epochs_trained"], r["best_epoch"],
                                                  r.get("stopped_early") or [True] * len(r["epochs_trained"])))
                     or "-")
        spe = r["seconds_per_epoch"]["mean"]
        cells.append("-" if spe is None else f"{spe:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> Dict[str, Any]:
    import torch

    return {"host": platform.node(), "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def main(argv=None) -> int:
    root = project_root()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", required=True, choices=sorted(TABLES), help="; ".join(f"{k}: {v[0]}" for k, v in TABLES.items()))
    p.add_argument("--variants", nargs="+", help="a subset (default: the table's rows); the reference (id; backbones: sasrec) is always trained")
    p.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    defaults = ", ".join(f"{t}: {e}" for t, (e, _) in DEFAULT_BUDGET.items())
    p.add_argument("--max-epochs", type=int, help=f"most epochs of any run / stage (default {MAX_EPOCHS}; {defaults})")
    defaults = ", ".join(f"{t}: {q}" for t, (_, q) in DEFAULT_BUDGET.items())
    p.add_argument("--patience", type=int, help=f"validations without a better NDCG@10 before stopping (default {PATIENCE}; {defaults})")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="another override of every run (after the budget), e.g. train.limit_train_batches=5 for a smoke test")
    p.add_argument("--recipes", type=Path, help="the recipes folder (default: the table's, recipes/ml1m)")
    p.add_argument("--runs", type=Path, default=bench_output("compare"),
                   help="RUNS/<table>/ holds one folder per (variant, seed) and compare.json (default: runs/bench/compare)")
    p.add_argument("--resamples", type=int, default=bootstrap.N_RESAMPLES, help="bootstrap resamples (default %(default)s)")
    p.add_argument("--table-only", action="store_true", help="train nothing; write and print the table of what is there")
    args = p.parse_args(argv)

    about, recipes_dir, reference, default_variants, variants = TABLES[args.table]
    max_epochs, patience = DEFAULT_BUDGET.get(args.table, (MAX_EPOCHS, PATIENCE))
    args.max_epochs = max_epochs if args.max_epochs is None else args.max_epochs
    args.patience = patience if args.patience is None else args.patience
    unknown = [v for v in args.variants or [] if v not in variants]
    if unknown:
        raise SystemExit(f"--variants {' '.join(unknown)}: not a variant of table {args.table} ({', '.join(variants)})")
    names = [reference] + [v for v in (args.variants or default_variants) if v != reference]
    recipes = args.recipes or root / recipes_dir
    runs = (args.runs / args.table).absolute()
    runs.mkdir(parents=True, exist_ok=True)
    budget, chain = budget_of(args.max_epochs, args.patience, args.extra, recipe_limits=args.table in RECIPE_LIMITS,
                              protocol=PROTOCOLS.get(args.table, ()))
    for seed in args.seeds:  # before training anything: the table must be of one budget
        for name in names:
            bench_idfree.check_budget(name, seed, runs, recipes, budget, chain, variants)
    if not args.table_only:
        prepare_inputs(names, args.seeds, runs, recipes, budget, chain, variants)
        for seed in args.seeds:  # seed-major: the first seed of every variant comes first
            for name in names:
                bench_idfree.train_variant(name, seed, runs, recipes, budget, chain, variants, tag="compare")
    rows = [row_of(name, variants, runs, args.seeds, args.max_epochs) for name in names]
    add_intervals(rows, reference, args.resamples)
    result = {
        "benchmark": "compare", "table": args.table, "about": about,
        "command": "cva-rec bench compare -- " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "recipes": str(recipes), "runs": str(runs), "seeds": args.seeds, "budget": budget,
        "chain": chain if "fluid" in names else None, "max_epochs": args.max_epochs, "patience": args.patience,
        "reference": reference, "interval": bootstrap.MARKER_NOTE, "resamples": args.resamples,
        "columns": {"metrics": "test metrics per part (all users; warm / cold: users whose test item is / is not a held-out "
                               "item), mean and sample std over seeds",
                    "delta_vs_reference": "paired bootstrap over users of the row minus the reference",
                    "random_rank_cold": "expected metrics of a uniformly random ranking for the cold users",
                    "epochs_trained / best_epoch": "per seed; best_epoch counted from 0 (the tested weights)"},
        "rows": rows,
    }
    atomic_write_json(runs / RESULT_FILE, result)
    print(f"{about}; budget: {' '.join(budget)}; runs: {runs}")
    print(markdown(rows, reference))
    print(bootstrap.MARKER_NOTE)
    if rows and rows[0].get("random_rank_cold"):
        rnd = rows[0]["random_rank_cold"]
        print("random ranking, cold users: " + ", ".join(f"{m} {v:.4f}" for m, v in rnd.items()))
    print(f"wrote {runs / RESULT_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
