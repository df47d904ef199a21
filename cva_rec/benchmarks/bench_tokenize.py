"""Tokenizer benchmark: RQ-KMeans (ours, torch) vs faiss vs scikit-learn on the same real-derived vectors.

One run, side by side, same data (100k x 128 PCA-projected MiniLM embeddings of MicroLens
title text, see ``tokenize_vectors.py``), L levels x N codes, same iteration cap:

* ours (torch, k-means++ + Lloyd), and its ``balanced`` and mini-batch variants;
* ours with ``backend="faiss"`` (``faiss.Kmeans`` level by level: random init, faiss
  subsamples 256 points per centroid when training);
* ``faiss.ResidualQuantizer`` (greedy, beam 1: the same algorithm inside faiss);
* scikit-learn ``KMeans`` level by level (k-means++, one init, Lloyd).

Printed: fit time, encode time, collision rate, unique fraction and final quantisation error
(mean squared residual), with ratios to ours. Thread count is whatever torch/faiss/sklearn
use by default on this machine.

    python -m cva_rec.benchmarks.bench_tokenize [--n 100000] [--dim 128] [--levels 4] [--codes 64] [--iters 25]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import cva_rec  # noqa: F401
from cva_rec.benchmarks import bench_output
from cva_rec.benchmarks.tokenize_vectors import real_vectors
from cva_rec.semantic_ids.diagnostics import code_diagnostics
from cva_rec.semantic_ids.rq_kmeans import RQKMeans


def ours(x, args, **kw):
    t0 = time.perf_counter()
    m = RQKMeans(levels=args.levels, codes=args.codes, iters=args.iters, seed=args.seed, **kw).fit(x)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    codes, errors = m.encode_with_errors(x)
    return fit, time.perf_counter() - t0, codes.numpy(), float(errors[-1])


def faiss_rq(x, args):
    import faiss

    rq = faiss.ResidualQuantizer(x.shape[1], args.levels, int(np.log2(args.codes)))
    rq.max_beam_size = 1  # greedy level by level, like RQ-KMeans
    rq.cp.niter = args.iters
    rq.cp.seed = args.seed
    t0 = time.perf_counter()
    rq.train(x)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    packed = rq.compute_codes(x)
    enc = time.perf_counter() - t0
    recon = rq.decode(packed)
    err = float(((x - recon) ** 2).sum(1).mean())
    # packed codes identify the tuple one-to-one: count collisions on them (view rows as bytes)
    _, inverse = np.unique(packed, axis=0, return_inverse=True)
    return fit, enc, inverse.reshape(-1, 1), err


def sklearn_levels(x, args):
    from sklearn.cluster import KMeans

    residual = x.astype(np.float32).copy()
    models, t0 = [], time.perf_counter()
    for level in range(args.levels):
        km = KMeans(args.codes, init="k-means++", n_init=1, max_iter=args.iters, random_state=args.seed + level).fit(residual)
        residual -= km.cluster_centers_[km.labels_].astype(np.float32)
        models.append(km)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    residual, codes = x.astype(np.float32).copy(), []
    for km in models:
        lab = km.predict(residual)
        residual -= km.cluster_centers_[lab].astype(np.float32)
        codes.append(lab)
    return fit, time.perf_counter() - t0, np.stack(codes, 1), float((residual ** 2).sum(1).mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--levels", type=int, default=4)
    p.add_argument("--codes", type=int, default=64)
    p.add_argument("--iters", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", default="", help="comma-separated rows to skip (e.g. sklearn,balanced)")
    p.add_argument("--cache", type=Path, default=bench_output("tokenize", "vectors_{n}x{dim}.npy"),
                   help="where the embedded vectors are cached (default: runs/bench/tokenize/vectors_<n>x<dim>.npy)")
    args = p.parse_args(argv)
    cache = Path(str(args.cache).format(n=args.n, dim=args.dim))
    x = real_vectors(args.n, args.dim, cache, args.seed)
    print(f"data: {x.shape[0]} x {x.shape[1]} real-derived vectors (MiniLM of MicroLens title text, PCA); "
          f"L={args.levels} x N={args.codes}, iters<={args.iters}, torch threads {torch.get_num_threads()}")
    dup = x.shape[0] - len(np.unique(x, axis=0))
    print(f"exactly duplicated vectors (repeated titles): {dup} ({dup / x.shape[0]:.2%}), a floor under any tokenizer's collision rate")
    skip = set(filter(None, args.skip.split(",")))
    rows = []
    runs = [
        ("ours (torch)", lambda: ours(x, args)),
        ("ours (torch, balanced)", lambda: ours(x, args, balanced=True)),
        ("ours (torch, mini-batch 8192)", lambda: ours(x, args, batch_size=8192)),
        ("ours (backend=faiss, faiss.Kmeans)", lambda: ours(x, args, backend="faiss")),
        ("faiss ResidualQuantizer", lambda: faiss_rq(x, args)),
        ("scikit-learn KMeans per level", lambda: sklearn_levels(x, args)),
    ]
    for name, fn in runs:
        key = "sklearn" if "scikit" in name else "balanced" if "balanced" in name else "minibatch" if "mini" in name else \
            "faiss_rq" if "Residual" in name else "faiss" if "faiss" in name else "ours"
        if key in skip:
            continue
        fit, enc, codes, err = fn()
        d = code_diagnostics(torch.as_tensor(codes), None, args.codes if codes.shape[1] > 1 else int(codes.max()) + 1)
        rows.append((name, fit, enc, d["collision_rate"], d["unique_fraction"], d["largest_collision_group"], err))
        print(f"  done: {name} ({fit:.1f} s)", flush=True)
    base = rows[0]
    print()
    print(f"{'tokenizer':<36} {'fit s':>7} {'x ours':>7} {'encode s':>8} {'collision':>9} {'x ours':>7} "
          f"{'unique':>7} {'max grp':>7} {'quant err':>9} {'x ours':>7}")
    for name, fit, enc, coll, uniq, grp, err in rows:
        print(f"{name:<36} {fit:>7.2f} {fit / base[1]:>7.2f} {enc:>8.2f} {coll:>9.2%} {coll / max(base[3], 1e-12):>7.2f} "
              f"{uniq:>7.2%} {grp:>7d} {err:>9.4f} {err / base[6]:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
