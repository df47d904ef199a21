"""Two-stage retrieval benchmark: generative recall + dense rerank vs full ranking by the same reranker.

Part 1, ml-1m (real data, ``../shared/data/ml-1m``): one reranker (``--reranker RUN``, a trained run such
as ``cva-rec train -c recipes/ml1m/sasrec_id.yaml``; without it a small one is trained into --out on
``--reranker-epochs`` x ``--limit-batches``, numbers then those of an undertrained model) and, per
retriever kind (``--contexts``) and N_v in {1, 2, 4}, one retriever:
* ``reranker``: the reranker's own encoder is the context and its item table is quantised into the
  codes (``recipes/ml1m/retriever_reranker.yaml``, ``cva_rec/retrieval/reranker_context.py``; seconds to fit);
* ``own``: learned GRDR codes from MiniLM text content (``data/stores/ml-1m-text``) and GRDR's own
  history transformer, co-trained (``recipes/ml1m/retriever_mv4.yaml``; minutes per N_v; reused from --out).
Then on the test users, for every beam B in {10, 50, 100}: candidate recall@K (target among the
recalled items), two-stage HR@10 / NDCG@10 and their ratio to full ranking by the *same* reranker
over the same users, per-user latency of each stage with the full-ranking pass timed right after,
and bytes per item of the trie.

Part 2, scale (synthetic): 1M items with random codes (4 views x 3 levels x 256 codes): trie build
time and size, then per-user latency of recall + rerank of 200 candidates against one full
[users x items] scoring pass + top-10, both from the same user encoder (a 2-block transformer of
width 64 over 50 history items, random weights: latency does not depend on training), for both
retriever kinds, in interleaved pairs (``--repeats``; every ratio printed, and their p50 / p75 / p90),
and peak memory;
``--scale-users 1`` is the single-user (serving) case.

    cva-rec bench retrieval [-- --skip-ml1m] [--skip-scale] [--reranker runs/ml1m/sasrec_id] [--contexts reranker own]
                            [--retriever-train-epochs 2] [--users 2048] [--scale-items 1000000] [--repeats 7] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

import cva_rec  # noqa: F401
from cva_rec.io import atomic_write_json
from cva_rec.retrieval.beam_search import beam_search
from cva_rec.retrieval.candidates import recalled_items
from cva_rec.retrieval.generative_retriever import GenerativeRetriever
from cva_rec.retrieval.multiview_tokenizer import SharedCodebook
from cva_rec.retrieval.trie import CodeTrie
from cva_rec.benchmarks import bench_output, project_root

REPO = project_root()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeats=3):
    """(median seconds, last result) of ``repeats`` calls."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


# -- part 1: ml-1m ----------------------------------------------------------------------------------------------
def full_ranking_ms_per_user(module, data, cfg, max_batches) -> float:
    """The reranker's full-ranking pass over the same test batches: scores for every item + target rank."""
    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.evaluation import per_user_uniform, target_ranks

    loader = RecBoleDataModule(data, cfg).test_dataloader()
    seconds, users_seen = 0.0, 0
    with torch.no_grad():
        module.model.item_embedding.weight  # the item table once, outside the timer (as for rerank)
        for i, (interaction, users, targets, h_rows, h_items) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            t0 = time.perf_counter()
            scores = module.model.full_sort_predict(interaction).view(len(users), -1).float()
            target_ranks(scores, targets, (h_rows, h_items), tie_uniform=per_user_uniform(users, 0))
            seconds += time.perf_counter() - t0
            users_seen += len(users)
    return 1000 * seconds / max(users_seen, 1)


def _reranker(args, out: Path, eval_batch: int):
    """(cfg, data, module in eval mode, run dir, full-ranking test metrics of the run, training seconds) of the
    reranker: ``--reranker RUN`` (a trained run, e.g. ``cva-rec train -c recipes/ml1m/sasrec_id.yaml``) or one
    trained here on the small budget of ``--reranker-epochs`` x ``--limit-batches``."""
    from cva_rec.config.schema import load_config
    from cva_rec.retrieval.two_stage import load_reranker
    from cva_rec.training.run import run_experiment

    if args.reranker:
        run_dir = Path(args.reranker)
        cfg, data, module, ckpt = load_reranker(run_dir, None, [f"eval.batch_size={eval_batch}"])
        metrics = run_dir / "metrics.json"
        full = json.loads(metrics.read_text()) if metrics.is_file() else {}
        print(f"reranker: {run_dir} ({ckpt.name}; trained {full.get('total_seconds', '?')} s, "
              f"{full.get('epochs_trained', '?')} epochs)")
        return cfg, data, module, run_dir, full
    run_dir = out / "reranker-sasrec-id"
    if not ((run_dir / "metrics.json").is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()):
        overrides = [f"train.epochs={args.reranker_epochs}", f"train.limit_train_batches={args.limit_batches}",
                     "train.early_stopping_patience=0", f"output.dir={out}", "output.name=reranker-sasrec-id",
                     f"eval.batch_size={eval_batch}"]
        run_experiment(load_config(REPO / "recipes" / "ml1m" / "sasrec_id.yaml", overrides), run_dir,
                       enable_progress_bar=True, overwrite=True)
    args.reranker = str(run_dir)
    return _reranker(args, out, eval_batch)


def _retriever(args, context: str, shape, views: int, out: Path, data, reranker_dir: Path, module):
    """(trained-or-reused retriever run dir, its metrics) for one row group; ``shape`` (levels, codes) for ``reranker``."""
    from cva_rec.retrieval.retriever_run import load_retriever_recipe, train_retriever

    if context == "reranker":  # k-means of the reranker's item table: seconds, always refitted for this reranker
        rc = load_retriever_recipe(REPO / "recipes" / "ml1m" / "retriever_reranker.yaml",
                                   [f"retriever.views={views}", f"retriever.reranker={reranker_dir}",
                                    f"retriever.levels={shape[0]}", f"retriever.codes={shape[1]}"])
        rdir = out / f"ctx-{shape[0]}x{shape[1]}-v{views}"
        return rdir, train_retriever(rc, rdir, data=data, reranker_module=module, overwrite=True)
    rc = load_retriever_recipe(REPO / "recipes" / "ml1m" / "retriever_mv4.yaml", [
        f"retriever.views={views}", f"retriever.train_epochs={args.retriever_train_epochs}",
        "retriever.align_epochs_first=1", "retriever.align_epochs=1", "retriever.extra_windows=0",
        f"retriever.device={args.device}"])
    rdir = out / f"grdr-v{views}"
    if (rdir / "metrics.json").is_file() and (rdir / "retriever.pt").is_file():
        return rdir, json.loads((rdir / "metrics.json").read_text())  # a finished retriever is reused
    return rdir, train_retriever(rc, rdir, data=data)


def ml1m_part(args, out: Path) -> dict:
    from cva_rec.retrieval.retriever_run import load_retriever
    from cva_rec.retrieval.two_stage import two_stage_eval

    store = REPO / "data" / "stores" / "ml-1m-text"
    if not (REPO.parent / "shared" / "data" / "ml-1m").is_dir():
        print("ml-1m part skipped: ../shared/data/ml-1m is absent")
        return {}
    if "own" in args.contexts and not store.is_dir():
        sys.exit(f"ml-1m part needs the text store: cva-rec extract-text --items ../shared/data/ml-1m/ml-1m.item --out {store}")
    os.chdir(REPO)  # recipes use paths relative to the repository root
    t_start = time.perf_counter()
    eval_batch = 1024
    cfg, data, module, reranker_dir, full = _reranker(args, out, eval_batch)
    print(f"ml-1m: {data.n_items - 1} items, {data.dataset.user_num - 1} users; reranker full-ranking test NDCG@10 "
          f"{full.get('test', {}).get('ndcg@10', float('nan')):.4f} (its metrics.json)")
    module.eval()
    max_batches = None if args.users is None else max(1, args.users // eval_batch)
    # full ranking over the same users the two-stage rows evaluate (the first max_batches test batches)
    sub = two_stage_reference(module, data, cfg, max_batches)
    print(f"full ranking by the reranker over these {sub['n_users']} users: HR@10 {sub['hr@10']:.4f} NDCG@10 {sub['ndcg@10']:.4f}")
    rows = []
    groups = [(c, shape, v) for c in args.contexts
              for shape in ([tuple(map(int, x.split("x"))) for x in args.ctx_shapes] if c == "reranker" else [None])
              for v in args.views]
    for context, shape, views in groups:
        t0 = time.perf_counter()
        rdir, trained = _retriever(args, context, shape, views, out, data, reranker_dir, module)
        train_s = trained.get("total_seconds", time.perf_counter() - t0)
        retriever, _, codes = load_retriever(rdir, data)
        for beam in args.beams:
            res = two_stage_eval(module, data, cfg, retriever, codes, beam, args.candidates, "test", args.device, max_batches)
            full_ms = full_ranking_ms_per_user(module, data, cfg, max_batches)  # timed right after: same machine load
            cand = res["candidates"]
            rows.append({"context": context, "views": views, "beam": beam, "train_seconds": round(train_s, 1),
                         "levels": trained["codes"]["levels"], "codes_per_level": trained["codes"]["n_codes"],
                         "same_path_across_views": trained["codes"]["same_path_across_views"],
                         "n_users": res["n_users"], "cand_recall": cand[f"recall@{args.candidates}"],
                         "candidates": cand, "mean_candidates": cand["mean_candidates"], "codes": trained["codes"],
                         "hr@10": res["hr@10"], "ndcg@10": res["ndcg@10"],
                         "hr@10_ratio": res["hr@10"] / max(sub["hr@10"], 1e-12),
                         "ndcg@10_ratio": res["ndcg@10"] / max(sub["ndcg@10"], 1e-12),
                         "recall_ms": res["timings"]["recall_ms_per_user"], "map_ms": res["timings"]["map_ms_per_user"],
                         "rerank_ms": res["timings"]["rerank_ms_per_user"], "full_ms": full_ms,
                         "bytes_per_item": res["index"]["bytes_per_item"]})
            r = rows[-1]
            print(f"  {context:8s} {r['levels']}x{r['codes_per_level']} N_v={views} B={beam:3d}: cand recall@10 {cand['recall@10']:.4f} @50 {cand['recall@50']:.4f} "
                  f"@{args.candidates} {r['cand_recall']:.4f} ({r['mean_candidates']:.0f} recalled) | HR@10 {r['hr@10']:.4f} "
                  f"({r['hr@10_ratio']:.3f}x full) NDCG@10 {r['ndcg@10']:.4f} ({r['ndcg@10_ratio']:.3f}x full) | ms/user: "
                  f"recall {r['recall_ms']:.3f} map {r['map_ms']:.3f} rerank {r['rerank_ms']:.3f} (full ranking "
                  f"{full_ms:.3f}) | {r['bytes_per_item']:.1f} B/item", flush=True)
    return {"reranker": str(reranker_dir), "reranker_metrics": {k: full.get(k) for k in ("test", "valid", "epochs_trained",
                                                                                         "total_seconds", "train_epoch_seconds")},
            "full_ranking": {"hr@10": sub["hr@10"], "ndcg@10": sub["ndcg@10"], "n_users": sub["n_users"]},
            "rows": rows, "candidates": args.candidates, "retriever_train_epochs": args.retriever_train_epochs,
            "seconds": round(time.perf_counter() - t_start, 1)}


def two_stage_reference(module, data, cfg, max_batches) -> dict:
    """Full-ranking metrics of the reranker on the users the two-stage rows evaluate."""
    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.evaluation import RankCollector, per_user_uniform, target_ranks

    collector = RankCollector()
    loader = RecBoleDataModule(data, cfg).test_dataloader()
    with torch.no_grad():
        for i, (interaction, users, targets, h_rows, h_items) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            scores = module.model.full_sort_predict(interaction).view(len(users), -1).float()
            ranks = target_ranks(scores, targets, (h_rows, h_items), tie_uniform=per_user_uniform(users, int(cfg["train"]["seed"])))
            collector.add(users, targets, ranks)
    return collector.compute(["hr", "ndcg"], [10])


# -- part 2: scale ----------------------------------------------------------------------------------------------
QUANTILES = (50, 75, 90)


def ratio_quantiles(ratios) -> dict:
    """p50 / p75 / p90 of the per-pair ratios (numpy's linear interpolation between order statistics)."""
    return {f"p{q}": float(np.percentile(ratios, q)) for q in QUANTILES}


def _quantile_text(quantiles: dict) -> str:
    return " / ".join(f"{quantiles[f'p{q}']:.3f}" for q in QUANTILES)


def scale_part(args, levels: int, k: int) -> dict:
    """1M items with random codes: recall + rerank of C candidates vs one full [users x items] pass + top-10.

    Both paths start from the same user encoder (the reranker's); the recall rows are
    * ``reranker-context`` (``reranker_context.py``): the reranker's user state is the context, the per-level
      code distributions are one [U, L, K] matmul, and the same state reranks (one encoder pass);
    * ``grdr``: the learned GRDR retriever, a second 2-block transformer over the history and a
      prefix-dependent MLP per level and beam (``generative_retriever.py``).
    Two-stage and full passes alternate ``--repeats`` times, each pair giving one ratio, so the
    machine's load shows up as the spread of the ratios (printed), not as a bias of one side.
    """
    from cva_rec.retrieval.reranker_context import RerankerContextRetriever

    n, views, dim, hist = args.scale_items, 4, 64, 50
    device = args.device
    rng = np.random.default_rng(0)
    codes = rng.integers(0, k, size=(n, views, levels), dtype=np.int64)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    trie = CodeTrie.build(codes, k, items=np.arange(1, n + 1))
    build_s = time.perf_counter() - t0
    ttrie = trie.to(device)
    print(f"scale: {n:,} items x {views} views x {levels} levels x {k} codes -> trie of {trie.n_paths:,} paths, built in "
          f"{build_s:.2f} s, {trie.nbytes() / 2**20:.1f} MiB ({trie.nbytes() / n:.1f} B/item)")
    torch.manual_seed(0)
    codebook = SharedCodebook(levels, k, dim).to(device)
    grdr = GenerativeRetriever(n + 1, dim, levels, None, hidden=dim, layers=2, heads=2, max_len=hist).to(device).eval()
    user_encoder = GenerativeRetriever(n + 1, dim, levels, None, hidden=dim, layers=2, heads=2, max_len=hist).to(device).eval()
    shared = RerankerContextRetriever(torch.randn(levels, k, dim) / dim ** 0.5).to(device)
    table = torch.randn(n + 1, dim, device=device)  # the reranker's item table (precomputed, as for full ranking)
    out = {"items": n, "views": views, "levels": levels, "codes": k, "trie_paths": trie.n_paths, "build_seconds": build_s,
           "trie_bytes": trie.nbytes(), "trie_bytes_per_item": trie.nbytes() / n, "item_table_bytes": table.numel() * 4, "rows": []}

    recalled = []  # candidates per user of each two-stage call (codes with few items per leaf recall fewer than C)

    def rerank_top10(q, leaves):
        cands = recalled_items(trie, leaves.cpu(), args.candidates)
        recalled.append(np.count_nonzero(cands) / len(cands))  # bookkeeping: one numpy call
        cands = torch.from_numpy(cands).to(device)
        scores = torch.bmm(table[cands], q[:, :, None]).squeeze(2).masked_fill(cands == 0, float("-inf"))
        return scores.topk(10, dim=1).indices

    for users in args.scale_users:
        seq = torch.from_numpy(rng.integers(1, n + 1, size=(users, hist))).to(device)
        lens = torch.full((users,), hist, device=device)

        def two_stage_shared():
            with torch.no_grad():
                q = user_encoder.user_context(seq, lens)  # the reranker's pass: context and rerank query at once
                return rerank_top10(q, shared.recall(q, ttrie, args.scale_beam).leaves)

        def two_stage_grdr():
            with torch.no_grad():
                u = grdr.user_context(seq, lens)
                res = beam_search(grdr.decoder(u, codebook), ttrie, users, args.scale_beam)
                return rerank_top10(user_encoder.user_context(seq, lens), res.leaves)

        def full():
            with torch.no_grad():
                q = user_encoder.user_context(seq, lens)
                scores = q @ table.T
                scores[:, 0] = float("-inf")
                return scores.topk(10, dim=1).indices

        for name, two_stage in (("reranker-context", two_stage_shared), ("grdr", two_stage_grdr)):
            two_stage()  # warm-up (allocator, first-call paths)
            warm_two, _ = timed(two_stage, 1)
            warm_full, _ = timed(full, 1)
            recalled.clear()
            # Each side of a pair is timed over a window of similar length: the shorter two-stage pass is
            # repeated back to back (``inner`` calls, mean taken). Both wall-clock and CPU time
            # (``time.process_time``, all threads of this process) are recorded: on a shared machine a
            # preemption adds wall time to a 3 ms pass that it did not cost, CPU time is the work done.
            inner = max(1, min(50, round(warm_full / max(warm_two, 1e-9))))
            pairs = []
            for _ in range(args.repeats):  # interleaved: each ratio compares passes timed seconds apart
                w0, c0 = time.perf_counter(), time.process_time()
                for _ in range(inner):
                    two_stage()
                w1, c1 = time.perf_counter(), time.process_time()
                full()
                w2, c2 = time.perf_counter(), time.process_time()
                pairs.append(((w1 - w0) / inner, w2 - w1, (c1 - c0) / inner, c2 - c1))
            per_user = lambda i: [1000 * p[i] / users for p in pairs]  # noqa: E731
            wall_ratios = [p[0] / p[1] for p in pairs]
            cpu_ratios = [p[2] / max(p[3], 1e-9) for p in pairs]
            row = {"retriever": name, "users": users, "beam": args.scale_beam, "candidates": args.candidates,
                   "mean_recalled": float(np.mean(recalled)), "two_stage_calls_per_pair": inner,
                   "two_stage_ms_per_user": float(np.median(per_user(0))), "full_ms_per_user": float(np.median(per_user(1))),
                   "ratio": float(np.median(wall_ratios)), "ratios": wall_ratios,
                   "two_stage_cpu_ms_per_user": float(np.median(per_user(2))), "full_cpu_ms_per_user": float(np.median(per_user(3))),
                   "cpu_ratio": float(np.median(cpu_ratios)), "cpu_ratios": cpu_ratios}
            row["quantiles"] = {"wall": ratio_quantiles(wall_ratios), "cpu": ratio_quantiles(cpu_ratios)}
            out["rows"].append(row)
            print(f"  {name:16s} {users:4d} users/batch, B={args.scale_beam}, {row['mean_recalled']:.0f} of {args.candidates} "
                  f"candidates recalled, {len(pairs)} interleaved pairs ({inner} two-stage calls each), target <= 0.1x:\n"
                  f"      wall: recall+rerank {row['two_stage_ms_per_user']:.3f} ms/user vs full ranking "
                  f"{row['full_ms_per_user']:.3f} ms/user -> median {row['ratio']:.3f}x [{' '.join(f'{x:.3f}' for x in wall_ratios)}]\n"
                  f"      CPU:  recall+rerank {row['two_stage_cpu_ms_per_user']:.3f} ms/user vs full ranking "
                  f"{row['full_cpu_ms_per_user']:.3f} ms/user -> median {row['cpu_ratio']:.3f}x "
                  f"[{' '.join(f'{x:.3f}' for x in cpu_ratios)}]\n"
                  f"      quantiles of the pair ratios p50 / p75 / p90: wall {_quantile_text(row['quantiles']['wall'])}, "
                  f"CPU {_quantile_text(row['quantiles']['cpu'])}; <= 0.1x up to p90: "
                  f"{'met' if max(row['quantiles']['wall']['p90'], row['quantiles']['cpu']['p90']) <= 0.1 else 'NOT met'}",
                  flush=True)
    out["peak_rss_mb"] = peak_rss_mb()
    out["rss_before_mb"] = rss0
    print(f"  peak RSS {out['peak_rss_mb']:.0f} MiB (item table {table.numel() * 4 / 2**20:.0f} MiB, "
          f"trie {trie.nbytes() / 2**20:.0f} MiB)")
    return out


def main(argv=None) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # retriever training progress
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-ml1m", action="store_true")
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--reranker", default=None, help="a trained cva_rec run to rerank with (default: train a small one "
                   "into --out: --reranker-epochs x --limit-batches)")
    p.add_argument("--contexts", nargs="+", default=["reranker", "own"], choices=["reranker", "own"],
                   help="retrievers: reranker = the reranker's encoder + codes of its item table (recipes/ml1m/"
                   "retriever_reranker.yaml); own = learned GRDR codes and encoder (retriever_mv4.yaml)")
    p.add_argument("--ctx-shapes", nargs="+", default=["2x32"], metavar="LxK",
                   help="code shapes (levels x codes) of the reranker-context retrievers (default: %(default)s)")
    p.add_argument("--reranker-epochs", type=int, default=2)
    p.add_argument("--limit-batches", type=int, default=60, help="reranker training batches (of 2048) per epoch")
    p.add_argument("--retriever-train-epochs", type=int, default=2, help="P2 epochs per level (P1: 1 per level)")
    p.add_argument("--views", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--beams", type=int, nargs="+", default=[10, 50, 100])
    p.add_argument("--candidates", type=int, default=200)
    p.add_argument("--users", type=int, default=None, help="evaluate only the first N test users (rounded to batches of 1024)")
    p.add_argument("--scale-items", type=int, default=1_000_000)
    p.add_argument("--scale-shapes", nargs="+", default=["3x256", "3x64"], metavar="LxK",
                   help="random code shapes (levels x codes, 4 views each): 3x256 puts ~1 item on a leaf (B beams recall "
                   "~B items), 3x64 ~15 (B = 50 fills 200 candidates)")
    p.add_argument("--scale-users", type=int, nargs="+", default=[1, 256],
                   help="users per batch of the scale rows: 1 = a single user (serving latency; CPU batches of <= 4 "
                   "users take the small-batch beam search, beam_search_small.py), 256 = a batch (default: %(default)s)")
    p.add_argument("--scale-beam", type=int, default=50)
    p.add_argument("--repeats", type=int, default=7, help="interleaved (two-stage, full) timing pairs per scale row")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=bench_output("retrieval"), help="default: runs/bench/retrieval")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    out = Path(args.out).resolve()  # absolute: the ml-1m part changes into the checkout for its recipes
    out.mkdir(parents=True, exist_ok=True)
    results = {"device": args.device, "torch_threads": torch.get_num_threads()}
    if not args.skip_ml1m:
        results["ml1m"] = ml1m_part(args, out)
        atomic_write_json(out / "results.json", results)
    if not args.skip_scale:
        results["scale"] = [scale_part(args, *map(int, shape.split("x"))) for shape in args.scale_shapes]
    atomic_write_json(out / "results.json", results)
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
