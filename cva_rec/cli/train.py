"""``cva-rec train``: fit one recipe, select the best epoch on validation, test it."""
from __future__ import annotations

import argparse
import json

from cva_rec.cli.common import add_config_args, train_resume_argv
from cva_rec.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train and test one recipe",
        description="Train a RecBole sequential backbone with the configured item encoder and loss, keep the "
        "checkpoint with the best eval.valid_metric, test it, and write the run directory: config.yaml, "
        "tb/ (TensorBoard), checkpoints/{best,last}.ckpt and metrics.json. A run folder has one writer at a "
        "time (a second `train` on it is refused, naming the holder) and holds one config: a folder that "
        "already holds a run is reused only to resume the same config (--set train.resume=true) or with "
        "--overwrite. See docs/reliability.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: cva-rec train -c recipes/ml100k/sasrec_id.yaml --set train.epochs=5\n"
        "         cva-rec train -c recipes/ml100k/sasrec_id.yaml --set train.resume=true   # continue a killed run\n"
        "         cva-rec train -c recipes/ml100k/sasrec_id.yaml --overwrite               # start that run again",
    )
    add_config_args(p, required=False)
    p.add_argument("--run-dir", help="run directory (default: <output.dir>/<output.name or derived name>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in the run folder: once the new run's checks pass, its metrics.json, then "
                   "checkpoints/ and tb/ are removed and the new config.yaml written (other files are left alone)")
    p.add_argument("--list-encoders", action="store_true", help="print the registered item encoders and exit")
    p.set_defaults(func=run, resume_argv=train_resume_argv)


def run(args) -> int:
    if args.list_encoders:
        from cva_rec.encoders import ENCODERS

        print("\n".join(ENCODERS.names()))
        return 0
    if not args.config:
        raise ConfigError("--config is required (a recipe YAML, e.g. recipes/ml100k/sasrec_id.yaml)")
    from cva_rec.config.schema import load_config
    from cva_rec.training.run import run_experiment

    cfg = load_config(args.config, args.overrides)
    metrics = run_experiment(cfg, args.run_dir, enable_progress_bar=not args.no_progress, overwrite=args.overwrite)
    print(json.dumps({"run": metrics["run"], "test": {k: v for k, v in metrics["test"].items() if isinstance(v, float)}}, indent=2))
    return 0
