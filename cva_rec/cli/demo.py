"""``cva-rec demo``: the main job — a small real experiment on RecBole's bundled ml-100k.

Trains ID-SASRec, ID-GRU4Rec and ID-NextItNet with settings sized for a few minutes on
2 CPU cores, then prints a results table and writes it to ``<out>/results.md``.
"""
from __future__ import annotations

import time
from pathlib import Path

from cva_rec.io import atomic_write_text

# (label, overrides) — one real training run each, on the same data and seed
DEMO_RUNS = [
    ("ID-SASRec", ["model.name=SASRec", "item_encoder.name=id"]),
    ("ID-GRU4Rec", ["model.name=GRU4Rec", "item_encoder.name=id"]),
    ("ID-NextItNet", ["model.name=NextItNet", "item_encoder.name=id"]),
]
# small, CPU-sized settings: short histories and few epochs (see README for full-size recipes)
DEMO_SETTINGS = ["dataset.max_seq_length=10", "train.batch_size=1024", "train.early_stopping_patience=0", "eval.popularity_buckets=10"]


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main demo: ID-SASRec / GRU4Rec / NextItNet on ml-100k, print a results table",
        description="A small, real experiment on RecBole's bundled ml-100k (no download): trains each demo "
        "variant with the same data, seed and budget, evaluates with full ranking (history masked) and prints "
        "HR/NDCG@10/20 with seconds per epoch, peak memory and parameters. Takes a few minutes on 2 CPU cores.",
    )
    p.add_argument("--out", default="runs/demo", help="where run directories and results.md go (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs per run (default: 3)")
    p.add_argument("--only", nargs="+", metavar="LABEL", help="run only these variants (labels as printed)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from cva_rec.config import load_config
    from cva_rec.report.table import markdown_table, row_of
    from cva_rec.training.run import run_experiment

    out = Path(args.out)
    rows = []
    t0 = time.perf_counter()
    for label, overrides in DEMO_RUNS:
        if args.only and label not in args.only:
            continue
        print(f"== {label}", flush=True)
        cfg = load_config(None, [*DEMO_SETTINGS, f"train.epochs={args.epochs}", f"output.dir={out}", f"output.name={label}", *overrides])
        metrics = run_experiment(cfg, enable_progress_bar=not args.no_progress)
        rows.append({**row_of(metrics), "item_encoder": label})
    table = markdown_table(rows, ("item_encoder", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "seconds_per_epoch", "peak_memory_mb", "parameters"))
    atomic_write_text(out / "results.md", f"# cva-rec demo (ml-100k, {args.epochs} epochs)\n\n{table}\n")
    print(f"\n{table}\n\nresults: {out / 'results.md'}   total {time.perf_counter() - t0:.0f} s")
    return 0
