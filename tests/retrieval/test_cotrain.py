"""Multi-view tokenizer + generative retriever co-training on a toy catalogue."""
import numpy as np
import pytest
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


def fixed_model(seed=0):
    fixed = torch.zeros(81, 1, 2, dtype=torch.long)
    fixed[1:, 0] = torch.from_numpy(np.random.default_rng(0).integers(0, 8, size=(80, 2)))
    torch.manual_seed(seed)
    cb = SharedCodebook(2, 8, 16)
    return GRDR(cb, GenerativeRetriever(81, 16, 2, None, hidden=16, layers=1, heads=2, max_len=10), fixed_codes=fixed)


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
    model = fixed_model()
    fixed = model.fixed_codes.clone()
    records = cotrain(model, indptr, items, CotrainSettings(**{**FAST.__dict__, "train_epochs": 4}))
    assert [r["phase"] for r in records] == ["train"] * 4
    assert records[-1]["ce"] < records[0]["ce"]  # the decoder learns the fixed paths
    assert torch.equal(model.item_codes(), fixed)


def _reference_cotrain(model, indptr, items, s, plan):
    """Plain torch, written apart from the module: Algorithm 1's epochs ``plan`` [(level, phase)], the level's
    codebook from k-means before its first P2 epoch, one AdamW, clipping at 5; each epoch's windows, order,
    target subsample and dropout seeded as documented (``(seed, epoch[, stream, rank])``)."""
    from cva_rec.retrieval.cotrain import batch_loss, init_codebook_level
    from cva_rec.retrieval.sequences import training_windows
    from cva_rec.training.loop_fit import epoch_generators, epoch_seed

    opt = torch.optim.AdamW(list(model.parameters()), lr=s.lr, weight_decay=s.weight_decay)
    for epoch, (level, phase) in enumerate(plan):
        if model.tokenizer is not None:
            if phase == "train" and plan[epoch - 1] == (level, "align"):
                init_codebook_level(model, level, s)
            model.codebook.freeze_below(level)
        model.train()
        pair_gen = epoch_generators(s.seed, epoch, 1, 0)[1]
        torch.manual_seed(epoch_seed(s.seed, epoch, 2, 0))
        rng, gen = epoch_generators(s.seed, epoch)
        windows, lengths = training_windows(indptr, items, s.max_len, s.extra_windows, rng)
        for idx in torch.randperm(len(windows), generator=gen).split(s.batch_size):
            loss = batch_loss(model, s, windows[idx], lengths[idx], level, phase, pair_gen)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 5.0)
            opt.step()
    if model.tokenizer is not None:
        model.codebook.freeze_below(0)
    return model.eval()


ONE_EACH = CotrainSettings(**{**FAST.__dict__, "train_epochs": 1, "extra_windows": 1, "seed": 4})


@pytest.mark.parametrize("mode", ["learned", "fixed"])
def test_lightning_fit_matches_a_plain_torch_loop(mode):
    content, indptr, items = toy(n_users=40, seed=5)
    build = (lambda: model_for(content, views=2, seed=1)) if mode == "learned" else fixed_model
    plan = [(0, "align"), (0, "train"), (1, "align"), (1, "train")] if mode == "learned" else [(1, "train")]
    model, reference = build(), build()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    records = cotrain(model, indptr, items, ONE_EACH, progress=False)
    assert [(r["level"] - 1, r["phase"]) for r in records] == plan
    _reference_cotrain(reference, indptr, items, ONE_EACH, plan)
    got, want = model.state_dict(), reference.state_dict()
    assert got.keys() == want.keys()
    for k in want:
        assert torch.allclose(got[k].float(), want[k].float(), atol=1e-5), (k, (got[k].float() - want[k].float()).abs().max())
    assert not torch.equal(got["retriever.heads.1.0.weight"], start["retriever.heads.1.0.weight"])  # it trained


def test_cotraining_runs_with_anomaly_detection_off_and_checkpoints(monkeypatch, tmp_path):
    """RecBole's sine.py switches autograd anomaly detection on, process-wide, at import (a SASRec reranker
    imports the model zoo); co-training is a fit of the training runs' Trainer, which switches it off (and
    back after), shows progress and writes checkpoints/last.ckpt after every epoch."""
    from cva_rec.io import load_torch_file
    from cva_rec.training import trainer as trainer_module

    seen, made = [], []
    states, make = GenerativeRetriever.sequence_states, trainer_module.make_trainer
    monkeypatch.setattr(GenerativeRetriever, "sequence_states",
                        lambda self, *a, **k: seen.append(torch.is_anomaly_enabled()) or states(self, *a, **k))
    monkeypatch.setattr(trainer_module, "make_trainer", lambda *a, **k: made.append(make(*a, **k)) or made[-1])
    content, indptr, items = toy()
    model = model_for(content, views=2)
    with torch.autograd.set_detect_anomaly(True):
        records = cotrain(model, indptr, items, FAST, run_dir=tmp_path)
        assert torch.is_anomaly_enabled()
    assert seen and not any(seen)
    assert len(made) == 1 and made[0].progress_bar_callback is not None and made[0].max_epochs == len(records) == 6
    assert made[0].gradient_clip_val == 5.0
    ckpt = load_torch_file(tmp_path / "checkpoints" / "last.ckpt", "checkpoint")
    assert ckpt["epoch"] == 5 and ckpt["cotrain"] == {"records": records, "initialised": 2}
    assert torch.equal(ckpt["state_dict"]["model.codebook.books.1"], model.codebook.books[1])
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("stop_after", [3, 4])  # 3: before level 2's P1; 4: after it, before its codebook init
def test_a_resumed_cotraining_ends_where_an_uninterrupted_one_does(monkeypatch, tmp_path, stop_after):
    from cva_rec.retrieval import cotrain as cotrain_module

    content, indptr, items = toy()
    config = cotrain_module.loop_config
    monkeypatch.setattr(cotrain_module, "loop_config", lambda device, epochs, *a: config(device, stop_after, *a))
    first = cotrain(model_for(content, views=2), indptr, items, FAST, run_dir=tmp_path, progress=False)  # stopped
    monkeypatch.undo()
    assert len(first) == stop_after
    resumed = model_for(content, views=2)  # a new process: fresh weights, all from the checkpoint
    records = cotrain(resumed, indptr, items, FAST, run_dir=tmp_path, resume=True, progress=False)
    straight = model_for(content, views=2)
    straight_records = cotrain(straight, indptr, items, FAST, progress=False)
    drop = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert drop(records) == drop(straight_records)
    for k, v in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k


def test_cotraining_under_ddp_keeps_ranks_equal_and_frozen_codebooks_still(tmp_path):
    """2 CPU processes (gloo) through Lightning's DDP launcher: the ranks end with the same weights, and the
    level-1 codebook stays as it was while level 2 trains (DDP's unused-parameter search leaves frozen
    codebooks without a gradient, so AdamW's weight decay does not move them)."""
    from tests.training.ddp_loops_script import run_ddp

    ranks = run_ddp("cotrain", tmp_path)
    for k, v in ranks[0]["state"].items():
        assert torch.equal(v, ranks[1]["state"][k]), k
    books0 = ranks[0]["books0"]
    assert [(r["level"], r["phase"]) for r in ranks[0]["records"]] == [(1, "align"), (1, "train"), (1, "train"),
                                                                       (2, "align"), (2, "train"), (2, "train")]
    assert not torch.equal(books0[1], books0[2])  # level 1 trains during its own P2
    assert all(torch.equal(books0[2], b) for b in books0[3:])  # and stays still afterwards
    assert all(np.isfinite(r["total"]) for r in ranks[0]["records"] + ranks[1]["records"])
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
