"""``cva-rec evaluate``: re-test a run's checkpoint (optionally under other eval settings)."""
from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained run's checkpoint on the test (or validation) split",
        description="Rebuild the model from RUN_DIR/config.yaml, load a checkpoint (default: best.ckpt) and "
        "rank the held-out items. Eval settings can be changed with --set eval.KEY=VALUE, e.g. "
        "--set eval.negatives=100 for 100 uniform negatives (add --set eval.negatives_sampler=popularity to draw them by popularity). "
        "Writes RUN_DIR/eval_<split>_<ckpt>.json (the metrics and their provenance: the config identity, the overrides "
        "and the fingerprints of the checkpoint, store and codes read) and eval/ (logs), holding RUN_DIR's lock: a "
        "folder a training run or another evaluation is writing is refused in one line naming it (--out DIR writes "
        "elsewhere).",
    )
    p.add_argument("run_dir", help="a run directory written by `cva-rec train`")
    p.add_argument("--checkpoint", help="checkpoint file (default: RUN_DIR/checkpoints/best.ckpt)")
    p.add_argument("--split", choices=("test", "valid"), default="test")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config key")
    p.add_argument("--per-user", metavar="CSV", help="also write user_id,target,rank (internal ids, 0-based rank) for every evaluated user")
    p.add_argument("--out", metavar="DIR", help="write the results (eval_<split>_<ckpt>.json, eval logs) into DIR instead of "
                   "RUN_DIR: evaluates a read-only run folder without writing into it")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from cva_rec.training.evaluate import evaluate_run

    per_user = Path(args.per_user) if args.per_user else None
    result = evaluate_run(Path(args.run_dir), args.checkpoint, args.split, args.overrides, not args.no_progress, per_user,
                          out_dir=Path(args.out) if args.out else None)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    return 0
