"""The fast path beside the exact path and RecBole's own Trainer: seconds per training epoch.

For each backbone (default SASRec, GRU4Rec, NextItNet) on ml-1m (``../shared/data``) at
``max_seq_length`` 50 with RecBole's defaults (batch 2048, CE over all items, Adam, lr 1e-3),
in ONE process, on the same machine load:

* ``RecBole``: ``recbole.trainer.Trainer._train_epoch`` over RecBole's own training loader, on the
  model ``recbole.utils.get_model`` builds: RecBole as its users run it. That includes autograd
  anomaly detection: RecBole's ``sequential_recommender/sine.py`` calls
  ``torch.autograd.set_detect_anomaly(True)`` at import, and ``get_model`` imports it, so every
  RecBole sequential run checks every backward output for NaN and records a traceback per op.
* ``RecBole, no anomaly``: the same with anomaly detection switched off (``--no-anomaly-column``
  drops it): how much of the gap is that one line.
* ``exact``: cva_rec's default path (RecBole's data engine, Lightning's fit loop, float32).
  Lightning's fit runs with anomaly detection off (its ``Trainer(detect_anomaly=False)``).
* ``fast``: ``train.fast: true`` with ``dataset.engine: streaming`` (cva_rec/backbones/fast_path.py:
  SDPA attention, dropout from 16-bit random words, ``torch.compile``; bf16-mixed where the CPU or
  GPU has bf16; ``--no-compile`` leaves compile out).

A full ml-1m epoch at length 50 is ~480 batches of seconds each on one core, so each configuration
trains ``--batches`` timed batches per round, after one untimed batch (the first step of a fit,
and for the fast path the compilation, are warm-up, reported separately), and the rounds are
interleaved (RecBole, exact, fast, ...; the order rotates each round) ``--rounds`` times. Seconds per
epoch are EXTRAPOLATED: mean seconds per batch (data fetch + step + the loop's own work, measured
between the ends of consecutive steps) x batches per epoch, in wall time and in CPU time of this process
(``time.process_time``; on a shared machine the steadier of the two). Printed: s/batch, s/epoch, the
ratios to RecBole's Trainer (with and without anomaly detection), and the target (fast <= 0.5x).

    cva-rec bench fast-path                                        # ml-1m, three backbones
    cva-rec bench fast-path -- --dataset ml-100k --data-path bundled --batches 5 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

from cva_rec.benchmarks import bench_output, project_root

CONFIGS = ("recbole", "recbole_no_anomaly", "exact", "fast")
LABELS = {"recbole": "RecBole Trainer", "recbole_no_anomaly": "RecBole, no anomaly", "exact": "cva_rec exact", "fast": "cva_rec fast"}


def stamp() -> Tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is what a step cost on a shared machine."""
    return time.perf_counter(), time.process_time()


def batch_ends(loader, n: int, stamps: List[Tuple[float, float]]):
    """Yield ``n`` batches of ``loader``; stamp the end of each step (when the loop asks for the next)."""
    for i, batch in enumerate(loader):
        if i == n:
            return
        yield batch
        stamps.append(stamp())


class RecBoleSide:
    """RecBole's Trainer on its own model and loader; ``anomaly`` as RecBole leaves it (on) or off."""

    def __init__(self, cfg, data, anomaly: bool):
        from recbole.trainer import Trainer
        from recbole.utils import get_model, init_seed

        init_seed(cfg["train"]["seed"], True)
        model = get_model(cfg["model"]["name"])(data.config, data.train._dataset)
        self.trainer, self.loader, self.anomaly, self.epoch = Trainer(data.config, model), data.train, anomaly, 0

    def run(self, n: int) -> List[float]:
        import torch

        stamps: List[Tuple[float, float]] = []
        with torch.autograd.set_detect_anomaly(self.anomaly):
            self.trainer._train_epoch(batch_ends(self.loader, n, stamps), self.epoch)
        self.epoch += 1
        return stamps


class LightningSide:
    """cva_rec's module under a Lightning fit of ``n`` batches (the run's precision; no validation, no checkpoints)."""

    def __init__(self, cfg, data):
        from cva_rec.training.run import build_module

        self.cfg, self.data, self.module = cfg, data, build_module(cfg, data)

    def run(self, n: int) -> List[float]:
        import lightning as L

        from cva_rec.training.datamodule import RecBoleDataModule
        from cva_rec.training.trainer import precision_of

        stamps: List[Tuple[float, float]] = []

        class Stamp(L.Callback):
            def on_train_batch_end(self, *args):
                stamps.append(stamp())

        trainer = L.Trainer(max_epochs=1, limit_train_batches=n, limit_val_batches=0, num_sanity_val_steps=0,
                            accelerator="cpu", devices=1, precision=precision_of(self.cfg["train"]), logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[Stamp()])
        trainer.fit(self.module, datamodule=RecBoleDataModule(self.data, self.cfg))
        return stamps


def measure_model(name: str, args) -> Dict[str, Any]:
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data

    base = [f"model.name={name}", f"dataset.name={args.dataset}", f"dataset.max_seq_length={args.max_seq_length}",
            f"train.batch_size={args.batch_size}", "train.optimizer=adam", "loss.name=full_softmax", f"output.dir={args.out}"]
    if args.data_path != "bundled":
        base.append(f"dataset.data_path={args.data_path}")
    exact_cfg = load_config(None, base)
    fast_cfg = load_config(None, [*base, "train.fast=true", "dataset.engine=streaming",
                                  f"train.compile={str(not args.no_compile).lower()}"])
    t0 = time.perf_counter()
    data = build_data(exact_cfg)  # RecBole's engine: RecBole's Trainer and the exact path share it
    fast_data = build_data(fast_cfg)
    print(f"[{name}] data built in {time.perf_counter() - t0:.0f} s; {len(data.train)} batches per epoch", flush=True)
    sides = {"recbole": RecBoleSide(exact_cfg, data, anomaly=True)}
    if not args.no_anomaly_column:
        sides["recbole_no_anomaly"] = RecBoleSide(exact_cfg, data, anomaly=False)
    sides["exact"] = LightningSide(exact_cfg, data)
    sides["fast"] = LightningSide(fast_cfg, fast_data)
    warm = {}
    for key, side in sides.items():  # warm-up: one step each (the fast path compiles here)
        if key == "fast" and not args.no_compile:
            print(f"[{name}] fast: first step, torch.compile compiles the backbone (can take minutes)", flush=True)
        t = time.perf_counter()
        side.run(1)
        warm[key] = time.perf_counter() - t
        if key == "fast" and not args.no_compile:
            print(f"[{name}] fast: compiled, first step took {warm[key]:.1f} s", flush=True)
    print(f"[{name}] warm-up s: " + ", ".join(f"{k} {v:.1f}" for k, v in warm.items()), flush=True)
    per_batch: Dict[str, List[float]] = {k: [] for k in sides}
    cpu_per_batch: Dict[str, List[float]] = {k: [] for k in sides}
    keys = list(sides)
    for r in range(args.rounds):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:  # rotate who goes first
            stamps = sides[key].run(args.batches + 1)
            per_batch[key].extend(b[0] - a[0] for a, b in zip(stamps, stamps[1:]))  # the first step of a fit is not timed
            cpu_per_batch[key].extend(b[1] - a[1] for a, b in zip(stamps, stamps[1:]))
        print(f"[{name}] round {r + 1}: " + ", ".join(f"{k} {sum(v) / len(v):.2f} s/batch ({sum(cpu_per_batch[k]) / len(v):.2f} CPU)"
                                                      for k, v in per_batch.items()), flush=True)
    n_batches = len(data.train)
    out: Dict[str, Any] = {"model": name, "batches_per_epoch": n_batches, "warmup_s": warm}
    for key, times in per_batch.items():
        s = sum(times) / len(times)
        cpu = sum(cpu_per_batch[key]) / len(times)
        out[key] = {"s_per_batch": s, "s_per_epoch_extrapolated": s * n_batches, "timed_batches": len(times),
                    "cpu_s_per_batch": cpu, "cpu_s_per_epoch_extrapolated": cpu * n_batches}
    out["precision_fast"] = _precision(fast_cfg)
    return out


def _precision(cfg) -> str:
    from cva_rec.training.trainer import precision_of

    return str(precision_of(cfg["train"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["SASRec", "GRU4Rec", "NextItNet"], help="backbones (default: %(default)s)")
    p.add_argument("--dataset", default="ml-1m", help="dataset name: <data-path>/<name>/<name>.inter (default: %(default)s)")
    p.add_argument("--data-path", default=str(project_root().parent / "shared" / "data"),
                   help="folder holding <dataset>/ (default: ../shared/data; 'bundled' = RecBole's own ml-100k)")
    p.add_argument("--max-seq-length", type=int, default=50, help="dataset.max_seq_length (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=2048, help="training batch, RecBole's default (default: %(default)s)")
    p.add_argument("--batches", type=int, default=3, help="timed batches per configuration per round (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default: %(default)s)")
    p.add_argument("--no-compile", action="store_true", help="the fast path without torch.compile")
    p.add_argument("--no-anomaly-column", action="store_true", help="skip the 'RecBole, no anomaly' configuration")
    p.add_argument("--out", type=Path, default=bench_output("fast-path"),
                   help="RecBole's and Lightning's files go here (default: runs/bench/fast-path)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if args.data_path != "bundled" and not (Path(args.data_path) / args.dataset / f"{args.dataset}.inter").is_file():
        print(f"no {args.dataset}.inter under {args.data_path}/{args.dataset} (--data-path bundled for RecBole's ml-100k)")
        return 2
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from cva_rec.training.trainer import quiet_lightning

    quiet_lightning()
    args.out = args.out.resolve()  # absolute: the configs name it after the chdir below
    args.out.mkdir(parents=True, exist_ok=True)
    args.json = args.json.resolve() if args.json else None
    os.chdir(args.out)  # RecBole's Trainer writes saved/ and log_tensorboard/ into the working directory
    rows = [measure_model(name, args) for name in args.models]
    print(f"\n{args.dataset}, max_seq_length {args.max_seq_length}, batch {args.batch_size}, CE over all items, Adam; "
          f"{args.rounds} interleaved rounds x {args.batches} timed batches per configuration; "
          f"s/epoch EXTRAPOLATED = s/batch x batches per epoch; torch threads {torch.get_num_threads()}")
    keys = [k for k in CONFIGS if k in rows[0]]
    print(f"{'model':<10} " + " ".join(f"{LABELS[k]:>20}" for k in keys) + "   fast precision   (wall s/epoch; CPU s/epoch below)")
    for r in rows:
        print(f"{r['model']:<10} " + " ".join(f"{r[k]['s_per_epoch_extrapolated']:>14.0f} s/ep" for k in keys) + f"   {r['precision_fast']}")
        print(f"{'  CPU':<10} " + " ".join(f"{r[k]['cpu_s_per_epoch_extrapolated']:>14.0f} s/ep" for k in keys))
    for clock, field in (("wall", "s_per_epoch_extrapolated"), ("CPU", "cpu_s_per_epoch_extrapolated")):
        print(f"\nratios of s/epoch, {clock} time (lower is faster)")
        for r in rows:
            rb = r["recbole"][field]
            parts = [f"{LABELS[k]} / RecBole {r[k][field] / rb:.3f}" for k in keys if k != "recbole"]
            parts.append(f"fast / exact {r['fast'][field] / r['exact'][field]:.3f}")
            verdict = f"target fast <= 0.5x RecBole: {'met' if r['fast'][field] <= 0.5 * rb else 'NOT met'}"
            if "recbole_no_anomaly" in r:
                met = r["fast"][field] <= 0.5 * r["recbole_no_anomaly"][field]
                verdict += f"; <= 0.5x RecBole without anomaly detection: {'met' if met else 'NOT met'}"
            print(f"{r['model']:<10} " + "; ".join(parts) + "   " + verdict)
    if args.json:
        from cva_rec.io import atomic_write_json

        atomic_write_json(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows})
    return 0 if all(r["fast"]["s_per_epoch_extrapolated"] <= 0.5 * r["recbole"]["s_per_epoch_extrapolated"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
