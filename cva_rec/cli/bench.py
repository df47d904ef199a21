"""``cva-rec bench NAME``: run a benchmark module of :mod:`cva_rec.benchmarks` (from a wheel install too).

Benchmarks print ratios measured side by side in one run (never timed unit tests).
"""
from __future__ import annotations

import runpy
import sys

from cva_rec.config.jobs import BENCH, BENCHMARK_MODULES
from cva_rec.errors import CvaRecError


#: benchmark name -> module (declared with the bench.name key of the config schema, one list)
BENCHMARKS = BENCHMARK_MODULES


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark (fidelity, extract, encoders, tokenize, codes, idfree, compare, retrieval, scale, fast-path, eval, gpu)",
        description="fidelity: histories, popularity and metrics vs independent references, and RecBole Trainer vs "
        "Lightning loop (metrics + epoch-time ratio); "
        "extract: feature extraction frames/s and feature-store read throughput; "
        "encoders: parameters / time / memory / accuracy of every item encoder as ratios to ID; "
        "tokenize: RQ-KMeans vs faiss / scikit-learn; codes: several tokenize outputs side by side (identity, and how "
        "much the codes follow behaviour on a recipe's training and held-out pairs); idfree: ID, ID + content hybrid, ID-free "
        "and the FLUID chain on the ml-1m item-cold-start split at one budget (overall / warm / cold metrics, ratios to ID, "
        "wall time); compare: one comparison table (--table idfree | encoders) trained to convergence over seeds, with paired "
        "bootstrap intervals over users against the ID model (compare.json); retrieval: generative recall + dense rerank vs full ranking "
        "(ml-1m, and a 1M-item synthetic catalogue); scale: RecBole vs streaming data engine at 0.1M-10M "
        "synthetic interactions (peak RSS, start-up, steps/s, eval users/s); fast-path: RecBole's Trainer vs cva_rec's exact and "
        "train.fast paths, s/epoch ratios (ml-1m, length 50, SASRec / GRU4Rec / NextItNet); eval: full-ranking evaluation vs its "
        "arithmetic limit (matmul + top-k) on ml-1m and a 110k x 10k synthetic shape; gpu: the CUDA benchmarks in one command "
        "(encoders at the paper's sizes, eval, fidelity timing). Extra arguments go to the benchmark "
        "(`cva-rec bench fidelity -- --help`).",
    )
    p.add_argument("name", help="one of " + ", ".join(BENCH["name"].choices) + " (bench.name, docs/config.md)")
    p.add_argument("args", nargs="*", help="arguments passed to the benchmark")
    p.set_defaults(func=run)


def run(args) -> int:
    from cva_rec.config.schema import validate_section

    name = validate_section("bench", {"name": args.name}, "cva-rec bench")["name"]
    module = BENCHMARKS[name]
    module = module if "." in module else f"cva_rec.benchmarks.{module}"
    sys.argv = [module, *args.args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        # a benchmark stops with SystemExit("what is wrong"): the same one line as every other cva-rec error
        raise CvaRecError(str(exc.code)) from None
    return 0
