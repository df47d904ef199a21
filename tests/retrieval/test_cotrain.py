"""Multi-view tokenizer + generative retriever co-training on a toy catalogue."""
import numpy as np
import torch

from cva_rec.retrieval.cotrain import CotrainSettings, cotrain
from cva_rec.retrieval.generative_retriever import GenerativeRetriever
from cva_rec.retrieval.grdr import GRDR
from cva_rec.retrieval.multiview_tokenizer import MultiViewTokenizer, SharedCodebook, view_similarity
from cva_rec.retrieval.trie import CodeTrie


def toy(n_items=80, n_users=60, dim=16, seed=0):
    """Items in 4 content clusters; each user walks mostly inside one cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, dim)) * 3
    cluster = rng.integers(0, 4, n_items)
    content = torch.zeros(n_items + 1, dim)
    content[1:] = torch.from_numpy(centres[cluster] + rng.normal(size=(n_items, dim))).float()
    seqs = []
    for _ in range(n_users):
        c = rng.integers(0, 4)
        pool = np.flatnonzero(cluster == c) + 1
        seqs.append(rng.choice(pool, size=rng.integers(6, 15)))
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    return content, indptr, np.concatenate(seqs)


def model_for(content, views, levels=2, codes=8, seed=0):
    torch.manual_seed(seed)
    cb = SharedCodebook(levels, codes, 16)
    tok = MultiViewTokenizer(content.shape[1], cb, views, hidden=32)
    ret = GenerativeRetriever(content.shape[0], 16, levels, content.shape[1], hidden=16, layers=1, heads=2, max_len=10)
    return GRDR(cb, ret, tok, content=content)


FAST = CotrainSettings(align_epochs_first=1, align_epochs=1, train_epochs=2, batch_size=32, max_targets=256, max_len=10,
                       kmeans_iters=5, extra_windows=0)


def test_cotraining_runs_and_views_differ():
    content, indptr, items = toy()
    model = model_for(content, views=3)
    records = cotrain(model, indptr, items, FAST)
    assert [r["phase"] for r in records] == ["align", "train", "train", "align", "train", "train"]
    assert all(np.isfinite(r["total"]) for r in records)
    codes = model.item_codes()[1:]  # [n, V, L]
    assert codes.shape == (80, 3, 2) and codes.min() >= 0 and codes.max() < 8
    # views differ: most items get at least two distinct paths, and the views' latents are far from collinear
    distinct = torch.tensor([len({tuple(p) for p in item.tolist()}) for item in codes])
    assert (distinct >= 2).float().mean() > 0.5
    with torch.no_grad():
        sim = view_similarity(model.tokenizer.encode(content[1:]))
    assert sim < 0.5
    # the trie holds every item under each view; recall returns valid leaves
    trie = CodeTrie.build(codes, 8, items=np.arange(1, 81))
    seq = torch.from_numpy(items[:5])[None].repeat(2, 1)
    res = model.recall(seq, torch.tensor([5, 3]), trie.to("cpu"), beam=min(6, trie.n_paths))
    assert (res.leaves >= 0).all()


def test_diversity_term_separates_views():
    content, indptr, items = toy(seed=1)
    sims = {}
    for w in (0.0, 5.0):
        model = model_for(content, views=2, seed=3)
        cotrain(model, indptr, items, CotrainSettings(**{**FAST.__dict__, "div_weight": w}))
        with torch.no_grad():
            sims[w] = float(view_similarity(model.tokenizer.encode(content[1:])))
    assert sims[5.0] < sims[0.0]


def test_fixed_single_view_codes_train_the_retriever_only():
    """Codes from `cva-rec tokenize` (one view, fixed): the paths stay, the retriever learns to decode them."""
    content, indptr, items = toy(seed=2)
    fixed = torch.zeros(81, 1, 2, dtype=torch.long)
    fixed[1:, 0] = torch.from_numpy(np.random.default_rng(0).integers(0, 8, size=(80, 2)))
    torch.manual_seed(0)
    cb = SharedCodebook(2, 8, 16)
    ret = GenerativeRetriever(81, 16, 2, None, hidden=16, layers=1, heads=2, max_len=10)
    model = GRDR(cb, ret, fixed_codes=fixed.clone())
    records = cotrain(model, indptr, items, CotrainSettings(**{**FAST.__dict__, "train_epochs": 4}))
    assert [r["phase"] for r in records] == ["train"] * 4
    assert records[-1]["ce"] < records[0]["ce"]  # the decoder learns the fixed paths
    assert torch.equal(model.item_codes(), fixed)


def test_cotraining_runs_with_anomaly_detection_off_after_recbole_switched_it_on(monkeypatch):
    """RecBole's sine.py switches autograd anomaly detection on, process-wide, at import (a SASRec reranker
    imports the model zoo); this loop is not Lightning's, so it switches it off itself, and back after."""
    seen = []
    states = GenerativeRetriever.sequence_states
    monkeypatch.setattr(GenerativeRetriever, "sequence_states",
                        lambda self, *a, **k: seen.append(torch.is_anomaly_enabled()) or states(self, *a, **k))
    content, indptr, items = toy()
    with torch.autograd.set_detect_anomaly(True):
        cotrain(model_for(content, views=2), indptr, items, FAST)
        assert torch.is_anomaly_enabled()
    assert seen and not any(seen)
