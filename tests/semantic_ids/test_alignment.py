"""Collaborative alignment: trained on training interactions only; held-out items encoded from content alone."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cva_rec.errors import DataError
from cva_rec.data.histories import UserSequences
from cva_rec.semantic_ids.alignment import fit_projection, training_pairs


def test_training_pairs_by_hand():
    # user 0: 1 2 3 | 4 (valid) 5 (test); user 1: 6 7 | 8 9; user 2: 3 items, one training item
    seqs = UserSequences.from_rows(np.array([0] * 5 + [1] * 4 + [2] * 3), np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 2, 4, 1]), 3)
    assert training_pairs(seqs).tolist() == [[1, 2], [2, 3], [6, 7]]
    held = np.zeros(10, dtype=bool)
    held[[5, 9]] = True  # test targets only: fine
    assert len(training_pairs(seqs, held)) == 3
    held[7] = True
    with pytest.raises(DataError, match="leaked"):
        training_pairs(seqs, held)


def test_projection_never_reads_held_out_rows_and_learns():
    gen = torch.Generator().manual_seed(0)
    n, d = 60, 16
    centres = torch.randn(6, d, generator=gen)
    x = (centres[torch.arange(n) % 6] + 0.5 * torch.randn(n, d, generator=gen)).numpy()
    held_out = np.arange(n) >= 50
    # pairs within the same (hidden) cluster, warm items only
    a = torch.randint(0, 50, (3000,), generator=gen).numpy()
    b = np.array([(i + 6 * int(torch.randint(1, 8, (1,), generator=gen))) % 48 for i in a])
    b = b - b % 6 + a % 6
    pairs = np.stack([a, b], 1)
    proj, report = fit_projection(x, pairs, out_dim=8, epochs=4, batch_size=128, lr=1e-2, temperature=0.2, seed=1)
    assert not held_out[report.rows_read].any() and report.pairs == 3000
    assert report.epoch_losses[-1] < report.epoch_losses[0]
    changed = x.copy()
    changed[held_out] = np.random.default_rng(5).normal(size=(held_out.sum(), d))  # held-out content is irrelevant
    proj2, _ = fit_projection(changed, pairs, out_dim=8, epochs=4, batch_size=128, lr=1e-2, temperature=0.2, seed=1)
    assert torch.equal(proj.weight, proj2.weight)
    # inductive: an item's projection depends on its own content only, alone or in a batch
    assert np.allclose(proj.project(x[50:51]), proj.project(x)[50:51], atol=1e-6)


def test_tokenize_align_on_a_cold_split(tmp_path, ml100k_text_store):
    from cva_rec.cli.main import main
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from cva_rec.features import open_store
    from cva_rec.io import load_torch_file
    from cva_rec.semantic_ids.codes import SemanticCodes
    from cva_rec.semantic_ids.rq_kmeans import RQKMeans

    recipe = tmp_path / "cold.yaml"
    recipe.write_text(f"dataset:\n  max_seq_length: 10\n  cold_items: 0.1\noutput:\n  dir: {tmp_path / 'runs'}\n")
    out = tmp_path / "aligned"
    assert main(["tokenize", str(ml100k_text_store), "--out", str(out), "--levels", "2", "--codes", "16",
                 "--align", str(recipe), "--align-dim", "32", "--align-epochs", "1", "--distinct"]) == 0
    diag = json.loads((out / "diagnostics.json").read_text())
    al = diag["alignment"]
    data = build_data(load_config(recipe))
    cold_tokens = [t for t, c in zip(data.item_tokens, data.cold_items.tolist()) if c]
    assert al["held_out_items"] == len(cold_tokens) > 0 and al["pairs"] == len(training_pairs(data.sequences))
    assert al["items_fitted"] <= data.n_items - 1 - len(cold_tokens)
    assert diag["room"]["unique_fraction"] == 1.0

    # inductive encoding: a held-out item's slice codes = the tokenizer applied to W x of its own content
    codes = SemanticCodes.load(out / "codes.npz")
    tok = RQKMeans.load(out / "tokenizer.pt")
    weight = load_torch_file(out / "alignment.pt", "alignment")["weight"]
    store = open_store(ml100k_text_store)
    row_of = {t: i for i, t in enumerate(store.item_ids)}
    for token in cold_tokens[:20]:
        r = row_of[token]
        feats, counts, _ = store.get_rows(np.array([r]))
        segs = torch.from_numpy(np.asarray(feats[0, : counts[0]], dtype=np.float32)) @ weight.T
        assert torch.equal(codes.slice_codes[r, : counts[0], :2], tok.encode(segs))
        assert (codes.room_codes[r] >= 0).all()


def _reference_fit(x, pairs, out_dim, epochs, batch_size, lr, temperature, seed, world=1):
    """Plain torch, written apart from the module: symmetric in-batch InfoNCE of W, Adam, each epoch's order
    from ``epoch_generators(seed, epoch)``, a last batch of one pair skipped; W starts as the projection's.
    ``world`` > 1: DDP's steps, each on the mean loss of ``world`` batches (rank r's k-th = the epoch's
    batch r + k * world, wrapping round)."""
    import torch.nn.functional as F

    from cva_rec.semantic_ids.alignment import CollaborativeProjection
    from cva_rec.training.loop_fit import epoch_generators

    rows = np.unique(pairs)
    local = torch.from_numpy(np.searchsorted(rows, pairs))
    v = torch.from_numpy(x[rows])
    weight = CollaborativeProjection(x.shape[1], out_dim, seed).weight.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([weight], lr=lr)

    def info_nce(batch):
        za = F.normalize(v[batch[:, 0]] @ weight.T, dim=-1)
        zb = F.normalize(v[batch[:, 1]] @ weight.T, dim=-1)
        logits, target = za @ zb.T / temperature, torch.arange(len(batch))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    epoch_losses = []
    for epoch in range(epochs):
        order = torch.randperm(len(local), generator=epoch_generators(seed, epoch)[1])
        batches = [local[idx] for idx in order.split(batch_size) if len(idx) >= 2]
        losses = []
        for k in range(-(-len(batches) // world)):
            loss = sum(info_nce(batches[(r + k * world) % len(batches)]) for r in range(world)) / world
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        epoch_losses.append(float(np.mean(losses)))
    return weight.detach(), epoch_losses


def _toy_pairs():
    from tests.training.ddp_loops_script import toy_pairs

    return toy_pairs()  # 41 pairs of 30 items: 5 batches of 8 + one of 1


def test_lightning_fit_matches_a_plain_torch_loop():
    x, pairs = _toy_pairs()
    args = dict(out_dim=4, epochs=3, batch_size=8, lr=5e-2, temperature=0.2, seed=3)
    proj, report = fit_projection(x, pairs, progress=False, **args)
    weight, losses = _reference_fit(x, pairs, **args)
    assert not torch.equal(weight, _initial_weight(x, args))  # it trained
    assert torch.allclose(proj.weight.detach(), weight, atol=1e-6), (proj.weight - weight).abs().max()
    assert np.allclose(report.epoch_losses, losses, atol=1e-5)


def _initial_weight(x, args):
    from cva_rec.semantic_ids.alignment import CollaborativeProjection

    return CollaborativeProjection(x.shape[1], args["out_dim"], args["seed"]).weight.detach()


def _spy_on_trainers(monkeypatch) -> list:
    from cva_rec.training import trainer as trainer_module

    made, make = [], trainer_module.make_trainer
    monkeypatch.setattr(trainer_module, "make_trainer", lambda *a, **k: made.append(make(*a, **k)) or made[-1])
    return made


def test_alignment_fits_with_the_training_trainer_anomaly_off_and_checkpointed(monkeypatch, tmp_path):
    """RecBole's sine.py switches autograd anomaly detection on process-wide at import; the alignment runs as a
    fit of the training runs' Trainer, which switches it off (and back after), shows progress and checkpoints."""
    from cva_rec.io import load_torch_file
    from cva_rec.semantic_ids.alignment import CollaborativeProjection

    seen = []
    forward = CollaborativeProjection.forward
    monkeypatch.setattr(CollaborativeProjection, "forward",
                        lambda self, x: seen.append(torch.is_anomaly_enabled()) or forward(self, x))
    made = _spy_on_trainers(monkeypatch)
    x, pairs = _toy_pairs()
    with torch.autograd.set_detect_anomaly(True):
        proj, report = fit_projection(x, pairs, out_dim=4, epochs=2, batch_size=8, seed=0, run_dir=tmp_path)
        assert torch.is_anomaly_enabled()
    assert seen and not any(seen)
    assert len(made) == 1 and made[0].progress_bar_callback is not None and made[0].max_epochs == 2
    ckpt = load_torch_file(tmp_path / "checkpoints" / "last.ckpt", "checkpoint")
    assert ckpt["epoch"] == 1 and ckpt["epoch_losses"] == report.epoch_losses
    assert torch.equal(ckpt["state_dict"]["projection.weight"], proj.weight.detach())
    assert not (tmp_path / "checkpoints" / "best.ckpt").exists()  # no validation: nothing to pick a best by
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_a_resumed_alignment_ends_where_an_uninterrupted_one_does(tmp_path):
    x, pairs = _toy_pairs()
    args = dict(out_dim=4, batch_size=8, lr=5e-2, temperature=0.2, seed=3, progress=False)
    fit_projection(x, pairs, epochs=1, run_dir=tmp_path / "run", **args)  # stopped after one epoch
    resumed, report = fit_projection(x, pairs, epochs=3, run_dir=tmp_path / "run", resume=True, **args)
    straight, straight_report = fit_projection(x, pairs, epochs=3, **args)
    assert torch.equal(resumed.weight, straight.weight) and report.epoch_losses == straight_report.epoch_losses


def test_alignment_under_ddp_steps_on_the_mean_of_each_ranks_batch(tmp_path):
    """2 CPU processes (gloo) through Lightning's DDP launcher: both ranks end with the same W, the W of a
    plain loop whose every step averages the two ranks' batches."""
    from tests.training.ddp_loops_script import run_ddp, toy_pairs

    ranks = run_ddp("align", tmp_path)
    assert torch.equal(ranks[0]["weight"], ranks[1]["weight"])
    x, pairs = toy_pairs()
    weight, _ = _reference_fit(x, pairs, out_dim=4, epochs=2, batch_size=8, lr=5e-2, temperature=0.2, seed=3, world=2)
    assert torch.allclose(ranks[0]["weight"], weight, atol=1e-5), (ranks[0]["weight"] - weight).abs().max()
    single, _ = _reference_fit(x, pairs, out_dim=4, epochs=2, batch_size=8, lr=5e-2, temperature=0.2, seed=3)
    assert not torch.allclose(ranks[0]["weight"], single, atol=1e-3)  # it did share the batches out
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
