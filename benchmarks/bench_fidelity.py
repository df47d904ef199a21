"""Fidelity: RecBole's own Trainer vs cva_rec's Lightning loop, same config, same seed.

For SASRec, GRU4Rec and NextItNet on RecBole's bundled ml-100k, trains once with
``recbole.trainer.Trainer`` and once with ``cva_rec.training.run.run_experiment`` and prints
test HR@10/NDCG@10/HR@20/NDCG@20 from both, their differences, and the ratio of seconds per
training epoch (Lightning / RecBole), all measured in this one process.

Protocol note: RecBole's sequential full-sort evaluator does not mask the user's history,
so the Lightning side runs with ``eval.mask_history=false`` here to compare like with like.

    python benchmarks/bench_fidelity.py [--epochs 3] [--max-seq-length 20] [--models SASRec GRU4Rec NextItNet]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cva_rec  # noqa: F401  (RecBole shims)
from cva_rec.config import load_config
from cva_rec.data import build_data
from cva_rec.io import atomic_write_json
from cva_rec.training.run import run_experiment

KEYS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


def recbole_run(cfg):
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    data = build_data(cfg)
    init_seed(cfg["train"]["seed"], True)
    model = get_model(cfg["model"]["name"])(data.config, data.train._dataset)
    trainer = Trainer(data.config, model)
    epoch_seconds = []
    inner = trainer._train_epoch

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = inner(*a, **k)
        epoch_seconds.append(time.perf_counter() - t0)
        return out

    trainer._train_epoch = timed
    trainer.fit(data.train, data.valid, saved=True, show_progress=False, verbose=False)
    result = trainer.evaluate(data.test, load_best_model=True, show_progress=False)
    named = {k.lower().replace("hit", "hr"): float(v) for k, v in result.items()}
    return named, sum(epoch_seconds) / len(epoch_seconds)


def lightning_run(cfg, out_dir):
    metrics = run_experiment(cfg, Path(out_dir) / f"lightning-{cfg['model']['name']}", enable_progress_bar=False)
    return metrics["test"], metrics["seconds_per_epoch"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-seq-length", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--models", nargs="+", default=["SASRec", "GRU4Rec", "NextItNet"])
    ap.add_argument("--out", default="runs/bench_fidelity")
    ap.add_argument("--json", help="also write the table as JSON here")
    args = ap.parse_args(argv)
    rows = []
    for name in args.models:
        overrides = [
            f"model.name={name}", f"train.epochs={args.epochs}", f"dataset.max_seq_length={args.max_seq_length}",
            f"train.batch_size={args.batch_size}", "train.optimizer=adam", "train.early_stopping_patience=0",
            "eval.mask_history=false", "eval.popularity_buckets=0", f"output.dir={args.out}",
        ]
        cfg = load_config(None, overrides)
        rb, rb_sec = recbole_run(cfg)
        lt, lt_sec = lightning_run(cfg, args.out)
        row = {"model": name, "recbole": {k: rb[k] for k in KEYS}, "lightning": {k: lt[k] for k in KEYS},
               "recbole_s_per_epoch": rb_sec, "lightning_s_per_epoch": lt_sec, "epoch_time_ratio": lt_sec / rb_sec}
        rows.append(row)
        print(f"[{name}] done: RecBole {rb_sec:.1f} s/epoch, Lightning {lt_sec:.1f} s/epoch", flush=True)
    header = f"{'model':<10} {'metric':<8} {'RecBole':>8} {'Lightning':>9} {'delta':>9}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        for k in KEYS:
            d = r["lightning"][k] - r["recbole"][k]
            print(f"{r['model']:<10} {k:<8} {r['recbole'][k]:>8.4f} {r['lightning'][k]:>9.4f} {d:>+9.4f}")
        print(f"{r['model']:<10} {'s/epoch':<8} {r['recbole_s_per_epoch']:>8.2f} {r['lightning_s_per_epoch']:>9.2f}  ratio {r['epoch_time_ratio']:.3f}")
    ok = all(abs(r["lightning"]["ndcg@10"] - r["recbole"]["ndcg@10"]) <= 0.005 and abs(r["lightning"]["hr@10"] - r["recbole"]["hr@10"]) <= 0.01 for r in rows)
    print(f"\ntargets |dNDCG@10| <= 0.005, |dHR@10| <= 0.01: {'met' if ok else 'NOT met'}; epoch-time ratios: "
          + ", ".join(f"{r['model']} {r['epoch_time_ratio']:.3f}" for r in rows))
    if args.json:
        atomic_write_json(args.json, rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
