"""Fidelity: the protocol checked against independent references, and RecBole's Trainer vs ours.

Part 1, protocol (``--protocol-datasets``, default ml-100k and ml-1m from ../shared/data when there):
for each dataset,

* history match: users whose validation / test history agrees with RecBole's own rows
  (its ``item_id_list``; equal where the window covers the whole history), and users whose whole
  sequence equals an independent pandas reader of the raw .inter file (cva_rec/reference);
* popularity match: items whose training popularity equals the reader's count;
* a briefly trained SASRec (``--protocol-batches`` training batches), evaluated by the project
  (Lightning test loop) and by the reference evaluator (cva_rec/reference/ranking.py) from the
  reader's targets and histories: full ranking masked and unmasked, 100 uniform and 100 popularity
  negatives. Per-user rank agreement and the largest metric difference (must be 0).

Part 2, loop (``--models``): for SASRec, GRU4Rec and NextItNet on RecBole's bundled ml-100k, trains
once with ``recbole.trainer.Trainer`` and once with ``cva_rec.training.run.run_experiment`` and
prints test HR@10/NDCG@10/HR@20/NDCG@20 from both, their differences, and the ratio of seconds per
training epoch (Lightning / RecBole), all measured in this one process. RecBole's sequential
full-sort evaluator does not mask the user's history, so the Lightning side runs with
``eval.mask_history=false`` there to compare like with like.

    python -m cva_rec.benchmarks.bench_fidelity [--epochs 3] [--max-seq-length 20] [--models SASRec GRU4Rec NextItNet]
    cva-rec bench fidelity -- --models            # protocol part only
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import cva_rec  # noqa: F401  (RecBole shims)
from cva_rec.config.schema import load_config
from cva_rec.data.dataset import build_data
from cva_rec.io import atomic_write_json
from cva_rec.plain_progress import progress_iter
from cva_rec.training.run import run_experiment
from cva_rec.benchmarks import bench_output, project_root

KEYS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


def recbole_run(cfg):
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    data = build_data(cfg)
    data.config["metric_decimal_place"] = 12  # RecBole rounds its metrics to 4 decimals by default
    if cfg["train"]["accelerator"] in ("gpu", "cuda"):
        import torch

        data.config["device"] = torch.device("cuda")  # RecBole's Trainer on the GPU too (build_data pins the CPU)
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
    # a benchmark re-measures: it replaces its own earlier run (run folders refuse reuse otherwise)
    metrics = run_experiment(cfg, Path(out_dir) / f"lightning-{cfg['model']['name']}", enable_progress_bar=True, overwrite=True)
    return metrics["test"], metrics["seconds_per_epoch"]

PROTOCOL_MODES = {
    "full, masked": ["eval.mask_history=true"],
    "full, unmasked": ["eval.mask_history=false"],
    "100 uniform negatives": ["eval.negatives=100", "eval.negatives_sampler=uniform"],
    "100 popularity negatives": ["eval.negatives=100", "eval.negatives_sampler=popularity"],
}
METRIC_KEYS = ("hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20")


def project_test(module, data, cfg):
    """The project's own test loop (Lightning, the module's evaluation) on ``cfg``'s eval settings."""
    import lightning as L

    from cva_rec.training.datamodule import RecBoleDataModule

    module.cfg = cfg
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False)
    trainer.test(module, datamodule=RecBoleDataModule(data, cfg), verbose=False)
    return module.results["test"], module.eval_rows["test"]


def protocol_row(name, data_path, args):
    import numpy as np
    import torch

    from cva_rec.reference.harness import history_agreement, raw_protocol, reference_metrics, score_matrix
    from cva_rec.training.evaluation import negative_weights, sample_negatives_per_user
    from cva_rec.training.run import build_module, load_checkpoint_into

    base = [f"dataset.name={name}", f"dataset.max_seq_length={args.max_seq_length}", "train.epochs=1",
            f"train.limit_train_batches={args.protocol_batches}", f"train.batch_size={args.batch_size}",
            "train.early_stopping_patience=0", "eval.popularity_buckets=0", f"output.dir={args.out}"]
    if data_path:
        base.append(f"dataset.data_path={data_path}")
    cfg = load_config(None, base)
    t0 = time.perf_counter()
    data = build_data(cfg)
    row = {"dataset": name, **history_agreement(cfg, data), "items": data.n_items - 1}
    metrics = run_experiment(cfg, Path(args.out) / f"protocol-{name}", enable_progress_bar=True, data=data, overwrite=True)
    module = build_module(cfg, data)
    load_checkpoint_into(module, metrics["best_checkpoint"])
    users, scores = score_matrix(module, data, cfg)
    r_users, r_targets, r_hists = raw_protocol(cfg, data)
    seed = cfg["train"]["seed"]
    row["modes"] = {}
    for mode, overrides in progress_iter(list(PROTOCOL_MODES.items()), desc=f"[protocol {name}] evaluation modes", unit="mode"):
        variant = load_config(None, base + overrides)
        ours, (p_users, p_targets, p_ranks) = project_test(module, data, variant)
        ev = variant["eval"]
        negs = None
        if ev["negatives"]:
            # the project's sampler (a function of seed and user); the reference checks what it excludes
            negs = sample_negatives_per_user(negative_weights(data.item_popularity, ev["negatives_sampler"]), torch.as_tensor(r_users),
                                             ev["negatives"], seed, targets=torch.as_tensor(r_targets),
                                             history=data.test_history.index_pairs(r_users)).numpy()
            clean = all(not set(negs[i]) & ({int(r_targets[i])} | set(r_hists[i].tolist())) for i in range(len(r_users)))
        ref_ranks, ref = reference_metrics(scores, r_users, r_targets, seed, (10, 20),
                                           histories=r_hists if ev["mask_history"] and negs is None else None, negatives=negs)
        same_users = np.array_equal(p_users.numpy(), r_users) and np.array_equal(p_targets.numpy(), r_targets)
        row["modes"][mode] = {
            "project": {k: ours[k] for k in METRIC_KEYS}, "reference": {k: ref[k] for k in METRIC_KEYS},
            "ranks_equal": float((p_ranks.numpy() == ref_ranks).mean()) if same_users else 0.0,
            "max_abs_diff": max(abs(ours[k] - ref[k]) for k in METRIC_KEYS),
            "negatives_clean": None if negs is None else clean,
        }
    row["seconds"] = time.perf_counter() - t0
    return row


def print_protocol(rows):
    print("\nprotocol vs independent references")
    for r in rows:
        print(f"\n{r['dataset']}: {r['users']} users, {r['items']} items")
        print(f"  history match vs RecBole's rows: test {100 * r['recbole_rows_test']:.2f}%, valid {100 * r['recbole_rows_valid']:.2f}%; "
              f"sequences vs raw-file reader {100 * r['raw_file_sequences']:.2f}%; popularity match {100 * r['popularity']:.2f}%")
        print(f"  {'mode':<26} {'NDCG@10 ours':>12} {'reference':>10} {'HR@10 ours':>10} {'reference':>10} {'ranks equal':>11} {'max |diff|':>10}")
        for mode, m in r["modes"].items():
            clean = "" if m["negatives_clean"] is None else ("  negatives exclude history+target" if m["negatives_clean"] else "  NEGATIVES HIT HISTORY")
            print(f"  {mode:<26} {m['project']['ndcg@10']:>12.6f} {m['reference']['ndcg@10']:>10.6f} {m['project']['hr@10']:>10.6f} "
                  f"{m['reference']['hr@10']:>10.6f} {100 * m['ranks_equal']:>10.2f}% {m['max_abs_diff']:>10.2e}{clean}")


def protocol_ok(rows):
    return all(
        r["recbole_rows_test"] == r["recbole_rows_valid"] == r["raw_file_sequences"] == r["popularity"] == 1.0
        and all(m["ranks_equal"] == 1.0 and m["max_abs_diff"] <= 1e-12 and m["negatives_clean"] is not False for m in r["modes"].values())
        for r in rows
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-seq-length", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--models", nargs="*", default=["SASRec", "GRU4Rec", "NextItNet"], help="loop part (none: skip it)")
    ap.add_argument("--protocol-datasets", nargs="*", default=None,
                    help="NAME or NAME=DATA_PATH (default: ml-100k, and ml-1m from ../shared/data when present; none: skip)")
    ap.add_argument("--protocol-batches", type=int, default=20, help="training batches of the protocol part's SASRec")
    ap.add_argument("--out", type=Path, default=bench_output("fidelity"),
                    help="run folders (and RecBole's saved/ and log/) go here (default: runs/bench/fidelity)")
    ap.add_argument("--json", help="also write the table as JSON here")
    ap.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu",
                    help="loop part: train both RecBole's Trainer and the Lightning loop on this device (default cpu)")
    args = ap.parse_args(argv)
    args.out = args.out.resolve()
    if args.protocol_datasets is None:
        shared = project_root().parent / "shared" / "data"
        args.protocol_datasets = ["ml-100k"] + ([f"ml-1m={shared}"] if (shared / "ml-1m" / "ml-1m.inter").is_file() else [])
    protocol = []
    for spec in args.protocol_datasets:
        name, _, path = spec.partition("=")
        protocol.append(protocol_row(name, path or None, args))
        print(f"[protocol {name}] done in {protocol[-1]['seconds']:.0f} s", flush=True)
    if protocol:
        print_protocol(protocol)
    rows = []
    for name in args.models:
        overrides = [
            f"model.name={name}", f"train.epochs={args.epochs}", f"dataset.max_seq_length={args.max_seq_length}",
            f"train.batch_size={args.batch_size}", "train.optimizer=adam", "train.early_stopping_patience=0",
            "eval.mask_history=false", "eval.popularity_buckets=0", f"output.dir={args.out}",
            f"train.accelerator={args.accelerator}",
        ]
        cfg = load_config(None, overrides)
        recbole_dir = args.out / "recbole"
        recbole_dir.mkdir(parents=True, exist_ok=True)
        print(f"[{name}] RecBole's Trainer, {args.epochs} epochs (no progress lines of its own)", flush=True)
        with contextlib.chdir(recbole_dir):  # RecBole's Trainer writes saved/ and log_tensorboard/ into the working directory
            rb, rb_sec = recbole_run(cfg)
        print(f"[{name}] RecBole's Trainer done ({rb_sec:.1f} s/epoch); now the Lightning loop", flush=True)
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
    exact = all(abs(r["lightning"][k] - r["recbole"][k]) <= 1e-9 for r in rows for k in KEYS)  # float summation order aside
    if rows:
        print(f"\nloop: metrics {'equal (to 1e-9)' if exact else 'not equal to 1e-9'}; targets |dNDCG@10| <= 0.005, |dHR@10| <= 0.01: "
              f"{'met' if ok else 'NOT met'}; epoch-time ratios: " + ", ".join(f"{r['model']} {r['epoch_time_ratio']:.3f}" for r in rows))
    p_ok = protocol_ok(protocol)
    if protocol:
        print(f"protocol: histories, popularity and reference metrics {'all agree' if p_ok else 'DO NOT all agree'}")
    if args.json:
        atomic_write_json(args.json, {"protocol": protocol, "loop": rows})
    return 0 if ok and p_ok else 1

if __name__ == "__main__":
    raise SystemExit(main())
