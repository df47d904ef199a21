"""``cva-rec bench NAME``: run a benchmark script from the source checkout's ``benchmarks/``.

Benchmarks print ratios measured side by side in one run (never timed unit tests).
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

from cva_rec.errors import ConfigError

BENCHMARKS = {
    "fidelity": "bench_fidelity.py",
    "extract": "bench_extract.py",
    "encoders": "bench_encoders.py",
    "tokenize": "bench_tokenize.py",
    "retrieval": "bench_retrieval.py",
    "scale": "bench_scale.py",
    "codes": "bench_codes.py",
}


def benchmarks_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "benchmarks"


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark (fidelity, extract, encoders, tokenize, codes, retrieval, scale)",
        description="fidelity: histories, popularity and metrics vs independent references, and RecBole Trainer vs "
        "Lightning loop (metrics + epoch-time ratio); "
        "extract: feature extraction frames/s and feature-store read throughput; "
        "encoders: parameters / time / memory / accuracy of every item encoder as ratios to ID; "
        "tokenize: RQ-KMeans vs faiss / scikit-learn; codes: several tokenize outputs side by side (identity, and how "
        "much the codes follow behaviour on a recipe's training and held-out pairs); retrieval: generative recall + dense rerank vs full ranking "
        "(ml-1m, and a 1M-item synthetic catalogue); scale: RecBole vs streaming data engine at 0.1M-10M "
        "synthetic interactions (peak RSS, start-up, steps/s, eval users/s). Extra arguments go to the benchmark "
        "(`cva-rec bench fidelity -- --help`).",
    )
    p.add_argument("name", choices=sorted(BENCHMARKS))
    p.add_argument("args", nargs="*", help="arguments passed to the benchmark script")
    p.set_defaults(func=run)


def run(args) -> int:
    script = benchmarks_dir() / BENCHMARKS[args.name]
    if not script.is_file():
        raise ConfigError(f"benchmark script {script} not found; benchmarks ship with the source checkout (pip install -e .)")
    sys.argv = [str(script), *args.args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
