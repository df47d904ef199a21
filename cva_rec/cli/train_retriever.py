"""``cva-rec train-retriever``: co-train the multi-view tokenizer and the generative retriever (GRDR)."""
from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "train-retriever",
        help="train a generative retriever (multi-view semantic IDs + trie-constrained decoding) for two-stage retrieval",
        description="Read a retriever recipe (`recipe:` a cva_rec recipe giving dataset, content store and seed; "
        "`retriever:` the model; `output:`), "
        "co-train the multi-view tokenizer and the generative retriever level by level (GRDR Algorithm 1), or, with "
        "retriever.codes_path, train the retriever on fixed codes (e.g. single-view `cva-rec tokenize` output), or, with "
        "retriever.context: reranker, fit codes on the item table of the trained run retriever.reranker, whose encoder "
        "then is the recall context (seconds; no training). Writes "
        "RUN_DIR/config.yaml, retriever.pt, codes.npz (every item's paths, per view), metrics.json. Use the run with "
        "`cva-rec retrieve RERANK_RUN --retriever RUN_DIR`. See docs/retrieval.md.",
    )
    p.add_argument("-c", "--config", required=True, help="retriever recipe (YAML: recipe, retriever, output), "
                   "e.g. recipes/ml1m/retriever_mv4.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="retriever.KEY / output.KEY change the retriever recipe, any other section the cva_rec recipe "
                   "it names, e.g. --set retriever.views=2 --set train.seed=1 (repeatable)")
    p.add_argument("--out", help="run directory (default: output.dir/output.name, or <dataset>-grdr-v<views>-s<seed>)")
    p.set_defaults(func=run)


def run_dir_for(rc) -> Path:
    r, cfg = rc["retriever"], rc["recipe"]
    views = 1 if r["codes_path"] else r["views"]
    kind = "ctx" if r["context"] == "reranker" else "grdr"
    name = rc["output"]["name"] or f"{cfg['dataset']['name']}-{kind}-v{views}-s{cfg['train']['seed']}"
    return Path(rc["output"]["dir"]) / name


def run(args) -> int:
    from cva_rec.retrieval.retriever_run import train_retriever
    from cva_rec.retrieval.settings import load_retriever_recipe

    rc = load_retriever_recipe(args.config, args.overrides)
    out = Path(args.out) if args.out else run_dir_for(rc)
    metrics = train_retriever(rc, out)
    print(json.dumps({"run": str(out), "mode": metrics["mode"], "seconds": metrics["total_seconds"], **metrics["codes"]}, indent=2))
    return 0
