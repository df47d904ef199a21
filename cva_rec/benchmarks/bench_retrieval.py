"""Two-stage retrieval benchmark: generative recall (GRDR) + dense rerank vs full ranking.

Part 1, ml-1m (real data, ``../shared/data/ml-1m``, MiniLM text content ``data/stores/ml-1m-text``):
one process builds the dataset once, trains one reranker (SASRec + ID embeddings, the protocol of
``recipes/ml1m/sasrec_id.yaml``) and one GRDR retriever per N_v in {1, 2, 4}
(``recipes/ml1m/retriever_mv4.yaml`` with ``views`` changed), then evaluates on the test users,
for every N_v and beam B in {10, 50, 100}: candidate recall@K (target among the recalled
items), two-stage HR@10 / NDCG@10 and their ratio to full ranking by the *same* reranker,
per-user latency of each stage next to the full-ranking pass, and bytes per item of the trie.
**Budgets are small on purpose** (2-core CPU): a few hundred reranker steps and a few retriever
epochs per level, so the absolute numbers are those of briefly trained models, said in the output.

Part 2, scale (synthetic): 1M items with random codes (4 views x 3 levels x 256 codes): trie build
time and size, then per-user latency of recall (retriever context + trie-constrained beam search
+ leaves -> items) + rerank of 200 candidates, against one full [users x items] scoring pass +
top-10, both with the same user encoder (a 2-block transformer of width 64 over 50 history items,
random weights: latency does not depend on training), and peak memory.

    cva-rec bench retrieval [-- --skip-ml1m] [--skip-scale] [--reranker-epochs 2] [--limit-batches 60]
                            [--retriever-train-epochs 2] [--users 2048] [--scale-items 1000000] [--device cpu]
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
from cva_rec.benchmarks import project_root

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


def ml1m_part(args, out: Path) -> dict:
    from cva_rec.config import load_config
    from cva_rec.data import build_data
    from cva_rec.retrieval.retriever_run import load_retriever, train_retriever
    from cva_rec.retrieval.settings import load_retriever_recipe
    from cva_rec.retrieval.two_stage import two_stage_eval
    from cva_rec.training.run import build_module, run_experiment

    store = REPO / "data" / "stores" / "ml-1m-text"
    if not (REPO.parent / "shared" / "data" / "ml-1m").is_dir():
        print("ml-1m part skipped: ../shared/data/ml-1m is absent")
        return {}
    if not store.is_dir():
        sys.exit(f"ml-1m part needs the text store: cva-rec extract-text --items ../shared/data/ml-1m/ml-1m.item --out {store}")
    os.chdir(REPO)  # recipes use paths relative to the repository root
    t_start = time.perf_counter()
    eval_batch = 1024
    overrides = [f"train.epochs={args.reranker_epochs}", f"train.limit_train_batches={args.limit_batches}",
                 "train.early_stopping_patience=0", f"output.dir={out}", "output.name=reranker-sasrec-id",
                 f"eval.batch_size={eval_batch}"]
    cfg = load_config(REPO / "recipes" / "ml1m" / "sasrec_id.yaml", overrides)
    data = build_data(cfg)
    print(f"ml-1m: {data.n_items - 1} items, {data.dataset.user_num - 1} users; data built in {time.perf_counter() - t_start:.0f} s")
    module = build_module(cfg, data)
    rerank_dir = out / "reranker-sasrec-id"
    t0 = time.perf_counter()
    if (rerank_dir / "metrics.json").is_file() and (rerank_dir / "checkpoints" / "best.ckpt").is_file():
        from cva_rec.training.run import load_checkpoint_into

        load_checkpoint_into(module, rerank_dir / "checkpoints" / "best.ckpt")  # a finished reranker is reused
        full = json.loads((rerank_dir / "metrics.json").read_text())
        print(f"reranker reused from {rerank_dir}")
    else:
        full = run_experiment(cfg, rerank_dir, enable_progress_bar=False, data=data, module=module, overwrite=True)
    print(f"reranker (SASRec-ID, {args.reranker_epochs} epochs x {args.limit_batches} batches of 2048): "
          f"{time.perf_counter() - t0:.0f} s, full-ranking test NDCG@10 {full['test']['ndcg@10']:.4f}")
    module.eval()
    max_batches = None if args.users is None else max(1, args.users // eval_batch)
    full_ms = full_ranking_ms_per_user(module, data, cfg, max_batches)
    # full ranking over the same users the two-stage rows evaluate (the first max_batches test batches)
    sub = two_stage_reference(module, data, cfg, max_batches)
    rows = []
    for views in args.views:
        rc = load_retriever_recipe(REPO / "recipes" / "ml1m" / "retriever_mv4.yaml", [
            f"retriever.views={views}", f"retriever.train_epochs={args.retriever_train_epochs}",
            "retriever.align_epochs_first=1", "retriever.align_epochs=1", "retriever.extra_windows=0",
            f"retriever.device={args.device}"])
        rdir = out / f"grdr-v{views}"
        t0 = time.perf_counter()
        if (rdir / "metrics.json").is_file() and (rdir / "retriever.pt").is_file():
            trained = json.loads((rdir / "metrics.json").read_text())  # a finished retriever is reused
            train_s = trained["total_seconds"]
        else:
            trained = train_retriever(rc, rdir, data=data)
            train_s = time.perf_counter() - t0
        grdr, _, codes = load_retriever(rdir, data)
        for beam in args.beams:
            res = two_stage_eval(module, data, cfg, grdr, codes, beam, args.candidates, "test", args.device, max_batches)
            rows.append({"views": views, "beam": beam, "train_seconds": round(train_s, 1),
                         "same_path_across_views": trained["codes"]["same_path_across_views"],
                         "n_users": res["n_users"], "cand_recall": res["candidates"][f"recall@{args.candidates}"],
                         "candidates": res["candidates"], "mean_candidates": res["candidates"]["mean_candidates"],
                         "codes": trained["codes"],
                         "hr@10": res["hr@10"], "ndcg@10": res["ndcg@10"],
                         "hr@10_ratio": res["hr@10"] / max(sub["hr@10"], 1e-12), "ndcg@10_ratio": res["ndcg@10"] / max(sub["ndcg@10"], 1e-12),
                         "recall_ms": res["timings"]["recall_ms_per_user"], "map_ms": res["timings"]["map_ms_per_user"],
                         "rerank_ms": res["timings"]["rerank_ms_per_user"], "bytes_per_item": res["index"]["bytes_per_item"]})
            r = rows[-1]
            print(f"  N_v={views} B={beam:3d}: cand recall@10 {res['candidates']['recall@10']:.4f} "
                  f"@{args.candidates} {r['cand_recall']:.4f} ({r['mean_candidates']:.0f} recalled) | HR@10 {r['hr@10']:.4f} "
                  f"({r['hr@10_ratio']:.3f}x full) NDCG@10 {r['ndcg@10']:.4f} ({r['ndcg@10_ratio']:.3f}x full) | ms/user: recall "
                  f"{r['recall_ms']:.3f} map {r['map_ms']:.3f} rerank {r['rerank_ms']:.3f} (full ranking {full_ms:.3f}) | "
                  f"{r['bytes_per_item']:.1f} B/item", flush=True)
    return {"full_ranking": {"hr@10": sub["hr@10"], "ndcg@10": sub["ndcg@10"], "n_users": sub["n_users"], "ms_per_user": full_ms,
                             "all_users_test": {k: full["test"][k] for k in ("hr@10", "ndcg@10", "n_users")}},
            "rows": rows, "candidates": args.candidates, "reranker_epochs": args.reranker_epochs,
            "limit_batches": args.limit_batches, "retriever_train_epochs": args.retriever_train_epochs,
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
def scale_part(args) -> dict:
    n, views, levels, k, dim, hist = args.scale_items, 4, 3, 256, 64, 50
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
    retriever = GenerativeRetriever(n + 1, dim, levels, None, hidden=dim, layers=2, heads=2, max_len=hist).to(device).eval()
    user_encoder = GenerativeRetriever(n + 1, dim, levels, None, hidden=dim, layers=2, heads=2, max_len=hist).to(device).eval()
    table = torch.randn(n + 1, dim, device=device)  # the reranker's item table (precomputed, as for full ranking)
    out = {"items": n, "views": views, "levels": levels, "codes": k, "trie_paths": trie.n_paths, "build_seconds": build_s,
           "trie_bytes": trie.nbytes(), "trie_bytes_per_item": trie.nbytes() / n, "item_table_bytes": table.numel() * 4, "rows": []}
    for users in args.scale_users:
        seq = torch.from_numpy(rng.integers(1, n + 1, size=(users, hist))).to(device)
        lens = torch.full((users,), hist, device=device)

        def two_stage():
            with torch.no_grad():
                u = retriever.user_context(seq, lens)
                res = beam_search(lambda lv, rows, prefix: retriever.level_log_probs(u[rows], prefix, codebook), ttrie, users, args.scale_beam)
                cands = torch.from_numpy(recalled_items(trie, res.leaves.cpu(), args.candidates)).to(device)
                q = user_encoder.user_context(seq, lens)
                scores = torch.bmm(table[cands], q[:, :, None]).squeeze(2).masked_fill(cands == 0, float("-inf"))
                return scores.topk(10, dim=1).indices

        def full():
            with torch.no_grad():
                q = user_encoder.user_context(seq, lens)
                scores = q @ table.T
                scores[:, 0] = float("-inf")
                return scores.topk(10, dim=1).indices

        two_s, _ = timed(two_stage, args.repeats)
        full_s, _ = timed(full, args.repeats)
        row = {"users": users, "beam": args.scale_beam, "candidates": args.candidates,
               "two_stage_ms_per_user": 1000 * two_s / users, "full_ms_per_user": 1000 * full_s / users, "ratio": two_s / full_s}
        out["rows"].append(row)
        print(f"  {users} users/batch, B={args.scale_beam}, {args.candidates} candidates: recall+rerank "
              f"{row['two_stage_ms_per_user']:.3f} ms/user vs full ranking {row['full_ms_per_user']:.3f} ms/user "
              f"-> {row['ratio']:.3f}x (target <= 0.1x)", flush=True)
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
    p.add_argument("--reranker-epochs", type=int, default=2)
    p.add_argument("--limit-batches", type=int, default=60, help="reranker training batches (of 2048) per epoch")
    p.add_argument("--retriever-train-epochs", type=int, default=2, help="P2 epochs per level (P1: 1 per level)")
    p.add_argument("--views", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--beams", type=int, nargs="+", default=[10, 50, 100])
    p.add_argument("--candidates", type=int, default=200)
    p.add_argument("--users", type=int, default=None, help="evaluate only the first N test users (rounded to batches of 1024)")
    p.add_argument("--scale-items", type=int, default=1_000_000)
    p.add_argument("--scale-users", type=int, nargs="+", default=[1, 256])
    p.add_argument("--scale-beam", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(REPO / "runs" / "bench_retrieval"))
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"device": args.device, "torch_threads": torch.get_num_threads()}
    if not args.skip_ml1m:
        results["ml1m"] = ml1m_part(args, out)
        atomic_write_json(out / "results.json", results)
    if not args.skip_scale:
        results["scale"] = scale_part(args)
    atomic_write_json(out / "results.json", results)
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
