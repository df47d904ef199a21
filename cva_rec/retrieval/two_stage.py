"""Generative recall + dense rerank over the reranker run's own evaluation users (GRDR sec. 3.4).

Per batch of the reranker's test (or validation) loader, i.e. the same users, targets and
history pairs full ranking uses:

1. **recall**: the retriever reads each user's most recent items (the history before the
   target) and decodes the top-``beam`` code paths by trie-constrained beam search;
2. **map**: paths -> items in beam order, de-duplicated, history dropped (target kept),
   cut to ``candidates``;
3. **rerank**: the reranker scores only those candidates; ranks are computed as in full
   ranking (``rerank.candidate_ranks``), a target that was not recalled counts as a miss.

The result has the layout of ``cva-rec evaluate`` (``n_users``, ``hr@K`` ..., popularity levels,
inductive split), plus ``candidates`` (candidate recall@K: the target is among the first K
recalled items) and ``timings`` (milliseconds per user of each stage).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from cva_rec.backbones import seq_output
from cva_rec.errors import ConfigError
from cva_rec.retrieval.candidates import candidate_recall, recalled_items
from cva_rec.retrieval.rerank import candidate_ranks, candidate_scores, user_candidate_scores
from cva_rec.retrieval.reranker_context import RerankerContextRetriever, check_same_table
from cva_rec.retrieval.retriever_run import build_trie, load_retriever, reranker_item_table, retriever_config_id
from cva_rec.retrieval.sequences import last_items


#: the files of a retriever run that recall reads (recorded by content in the result)
RETRIEVER_FILES = ("config.yaml", "retriever.pt", "codes.npz")


def recall_cutoffs(n_candidates: int) -> list:
    return sorted({k for k in (10, 20, 50, 100, 200, 500, 1000) if k < n_candidates} | {n_candidates})


def two_stage_eval(module, data, cfg: Dict[str, Any], retriever, codes, beam: int, n_candidates: int,
                   split: str = "test", device: str = "cpu", max_batches: Optional[int] = None) -> Dict[str, Any]:
    """``module``: a reranker ``SeqRecModule`` with weights loaded; ``retriever``: a ``GRDR``; ``codes`` its
    ``MultiViewCodes`` aligned to ``data``."""
    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.evaluation import RankCollector, per_user_uniform

    if cfg["eval"]["negatives"]:
        raise ConfigError("two-stage evaluation ranks the recalled candidates; it cannot be combined with "
                          "sampled negatives (eval.negatives must be 0)")
    if n_candidates < 1:
        raise ConfigError(f"--candidates must be >= 1, got {n_candidates}")
    shared_context = isinstance(retriever, RerankerContextRetriever)
    if shared_context:
        check_same_table(retriever, reranker_item_table(module))
    trie = build_trie(codes)
    ttrie = trie.to(device)
    module.to(device).eval()
    retriever.to(device).eval()
    dm = RecBoleDataModule(data, cfg)
    loader = dm.test_dataloader() if split == "test" else dm.val_dataloader()
    history = data.test_history if split == "test" else data.valid_history
    seed = int(cfg["train"]["seed"])
    mask_history = bool(cfg["eval"]["mask_history"])
    collector = RankCollector()
    all_cands, all_targets = [], []
    seconds = {"recall": 0.0, "map": 0.0, "rerank": 0.0}
    with torch.no_grad():
        module.model.item_embedding.weight  # build the reranker's item table once (offline index), outside the timers
        for i, (interaction, users, targets, h_rows, h_items) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            t0 = time.perf_counter()
            interaction = interaction.to(device)
            if shared_context:  # the reranker's user state is the context; rerank reuses it (one encoder pass)
                user = seq_output(module.model, interaction)
                res = retriever.recall(user, ttrie, beam)
            else:
                seq, lens = last_items(history.indptr, history.items, users.numpy(), retriever.retriever.max_len)
                res = retriever.recall(seq.to(device), lens.to(device), ttrie, beam)
            leaves = res.leaves.cpu()
            t1 = time.perf_counter()
            pairs = (h_rows, h_items) if mask_history else None
            cands = recalled_items(trie, leaves, n_candidates, pairs, targets.numpy())
            t2 = time.perf_counter()
            cand_t = torch.from_numpy(cands).to(device)
            if shared_context:
                scores = user_candidate_scores(module.model, user, cand_t)
            else:
                scores = candidate_scores(module.model, interaction, cand_t)
            ranks = candidate_ranks(scores.cpu(), cand_t.cpu(), targets, pairs, per_user_uniform(users, seed), data.n_items)
            t3 = time.perf_counter()
            seconds["recall"] += t1 - t0
            seconds["map"] += t2 - t1
            seconds["rerank"] += t3 - t2
            collector.add(users, targets, ranks)
            all_cands.append(cands)
            all_targets.append(targets.numpy())
    ev = cfg["eval"]
    result = collector.compute(ev["metrics"], ev["topk"], module.item_popularity.cpu(), ev["popularity_buckets"],
                                seen_in_training=module.seen_in_training)
    cands = np.concatenate(all_cands) if all_cands else np.zeros((0, n_candidates), dtype=np.int64)
    targets = np.concatenate(all_targets) if all_targets else np.zeros(0, dtype=np.int64)
    n = max(len(targets), 1)
    result["candidates"] = {"beam": beam, "n_candidates": n_candidates, "views": codes.views,
                            "mean_candidates": float((cands > 0).sum(1).mean()) if len(cands) else 0.0,
                            **candidate_recall(cands, targets, recall_cutoffs(n_candidates))}
    result["timings"] = {"device": device, **{f"{k}_ms_per_user": 1000 * v / n for k, v in seconds.items()},
                         "total_ms_per_user": 1000 * sum(seconds.values()) / n}
    result["index"] = {"trie_paths": trie.n_paths, "trie_bytes": trie.nbytes(), "bytes_per_item": trie.nbytes() / max(trie.n_items, 1)}
    return result


def load_reranker(run_dir: Path, checkpoint: Optional[str], overrides: Sequence[str] = ()):
    """(cfg, data, module with the checkpoint loaded) of a trained cva_rec run (as ``evaluate`` loads it)."""
    from cva_rec.training.evaluate import load_trained_module, run_config_and_checkpoint

    cfg, ckpt = run_config_and_checkpoint(run_dir, checkpoint, overrides)
    data, module = load_trained_module(cfg, ckpt)
    module.eval()
    return cfg, data, module, ckpt


def retrieve_run(run_dir: Path, retriever_dir: Path, beam: int, n_candidates: int, split: str = "test",
                 checkpoint: Optional[str] = None, overrides: Sequence[str] = (), device: str = "cpu",
                 out_dir: Optional[Path] = None) -> tuple[Dict[str, Any], Path]:
    """Two-stage evaluation of a reranker run with a retriever run; writes (into ``out_dir``, default the
    reranker's run folder, holding its lock) and returns the result, with its ``provenance``: the config
    identities of both runs and the fingerprints of every file read (the reranker's checkpoint, store and
    codes, the retriever's config, weights and codes)."""
    from cva_rec.io import atomic_write_json, ensure_writable
    from cva_rec.jobs.provenance import RunFiles, evaluation_provenance
    from cva_rec.jobs.run_folder import results_lock
    from cva_rec.training.evaluate import RESULTS_ELSEWHERE

    out = ensure_writable(Path(out_dir) if out_dir else run_dir, "retrieve writes its results there: pass --out DIR to "
                          "write them elsewhere")
    cfg, data, module, ckpt = load_reranker(run_dir, checkpoint, overrides)
    retriever, rcfg, codes = load_retriever(retriever_dir, data)
    if rcfg["dataset"]["name"] != cfg["dataset"]["name"]:
        raise ConfigError(f"retriever {retriever_dir} was trained on {rcfg['dataset']['name']!r}, "
                          f"the reranker on {cfg['dataset']['name']!r}")
    with results_lock(out, cfg, RESULTS_ELSEWHERE):  # every check passed: nothing else may write OUT meanwhile
        read = {"retriever": RunFiles(retriever_dir, RETRIEVER_FILES)}
        if getattr(retriever, "content", None) is not None and rcfg["content"]["store"]:
            read["retriever/content.store"] = Path(rcfg["content"]["store"])
        provenance = {**evaluation_provenance(cfg, run_dir, ckpt, overrides, read),
                      "retriever_config_id": retriever_config_id(rcfg)}
        result = two_stage_eval(module, data, cfg, retriever, codes, beam, n_candidates, split, device)
        result["reranker"], result["retriever"], result["checkpoint"] = str(run_dir), str(retriever_dir), str(ckpt)
        result["provenance"] = provenance
        path = out / f"retrieve_{split}_{ckpt.stem}_{retriever_dir.name}_b{beam}_c{n_candidates}.json"
        atomic_write_json(path, result)
    return result, path
