"""``cva-rec train-retriever``: co-train the multi-view tokenizer and the generative retriever (GRDR)."""
from __future__ import annotations

import json
from pathlib import Path

from cva_rec.cli.common import train_resume_argv


def register(sub) -> None:
    p = sub.add_parser(
        "train-retriever",
        help="train a generative retriever (multi-view semantic IDs + trie-constrained decoding) for two-stage retrieval",
        description="Read a retriever recipe (`recipe:` a cva_rec recipe giving dataset, content store and seed; "
        "`retriever:` the model; `output:`), "
        "co-train the multi-view tokenizer and the generative retriever level by level (GRDR Algorithm 1), or, with "
        "retriever.codes_path, train the retriever on fixed codes (e.g. single-view `cva-rec tokenize` output), or, with "
        "retriever.context: reranker, fit codes on the item table of the trained run retriever.reranker, whose encoder "
        "then is the recall context (seconds; no training). Claims RUN_DIR like a training run (a lock while it "
        "runs; another config there is refused, and so is a run of this config unless --set train.resume=true "
        "continues it from its checkpoints/last.ckpt; a stopped run prints that command) and writes "
        "RUN_DIR/config.yaml, retriever.pt, codes.npz (every item's paths, per view), metrics.json (+ checkpoints/ and "
        "tb/ of the co-training). Use the run with "
        "`cva-rec retrieve RERANK_RUN --retriever RUN_DIR`. See docs/retrieval.md.",
    )
    p.add_argument("-c", "--config", required=True, help="retriever recipe (YAML: `recipe:` the cva_rec recipe of the data, "
                   "`retriever:`, `output:`; keys in docs/config.md), e.g. recipes/ml1m/retriever_mv4.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one key of any section, e.g. --set retriever.views=2 --set train.seed=1 (repeatable)")
    p.add_argument("--out", help="run directory (default: output.dir/output.name, or <dataset>-grdr-v<views>-s<seed>)")
    p.add_argument("--overwrite", action="store_true", help="replace the run the run directory holds (refused otherwise)")
    p.set_defaults(func=run, resume_argv=train_resume_argv)


def run(args) -> int:
    from cva_rec.retrieval.retriever_run import load_retriever_recipe, run_dir_for, train_retriever

    cfg = load_retriever_recipe(args.config, args.overrides)
    out = Path(args.out) if args.out else run_dir_for(cfg)
    metrics = train_retriever(cfg, out, overwrite=args.overwrite)
    print(json.dumps({"run": str(out), "mode": metrics["mode"], "seconds": metrics["total_seconds"], **metrics["codes"]}, indent=2))
    return 0
