"""Slice codes, room codes by per-level majority vote (with ties), slice rules, SemanticCodes files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cva_rec.errors import CheckpointError, ConfigError
from cva_rec.semantic_ids.codes import SemanticCodes, SliceRule, majority_vote
from cva_rec.semantic_ids.rq_kmeans import RQKMeans
from sid_test_data import EMPTY_ITEM, segments  # noqa: F401  (fixture)


def test_majority_vote_per_level_and_smallest_tie_break():
    codes = torch.tensor([
        [[1, 2], [1, 3], [0, 3], [-1, -1]],  # level 1: 1 wins 2:1; level 2: 3 wins 2:1
        [[2, 0], [1, 1], [-1, -1], [-1, -1]],  # ties at both levels: smallest -> [1, 0]
        [[-1, -1]] * 4,  # no segments
    ])
    mask = codes[..., 0] >= 0
    room = majority_vote(codes, mask, n_codes=4, tie_break="smallest")
    assert room.tolist() == [[1, 3], [1, 0], [-1, -1]]
    # nearest_mean without vectors falls back to smallest
    assert majority_vote(codes, mask, n_codes=4).tolist() == room.tolist()


def test_nearest_mean_tie_break_picks_the_tied_code_nearest_the_item_mean():
    # 1-d tokenizer with hand-set centroids so the answer can be worked out by hand
    tok = RQKMeans(levels=2, codes=3)
    tok.centroids = torch.tensor([[[0.0], [10.0], [20.0]], [[-1.0], [0.0], [1.0]]])
    tok.offsets = torch.zeros(2, 3)
    feats = np.array([[[0.0], [10.9], [0.0]], [[0.0], [9.0], [0.0]]], dtype=np.float32)  # 2 segments each
    counts = np.array([2, 2])
    item = SemanticCodes.from_features(tok, feats, counts, tie_break="nearest_mean")
    # item 0: segments 0.0 -> [0, 1] and 10.9 -> [1, 2]; ties at both levels; mean 5.45 is nearer 10
    # than 0 -> level 1 = 1; residual 5.45 - 10 = -4.55; tied level-2 codes {1 (at 0.0), 2 (at 1.0)} -> 1
    assert item.slice_codes[0, :2].tolist() == [[0, 1], [1, 2]]
    assert item.room_codes[0].tolist() == [1, 1]
    # item 1: segments 0.0 -> [0, 1], 9.0 -> [1, 0]; mean 4.5 nearer 0 than 10 -> 0; residual 4.5 -> tied {0, 1}: 1 (0.0)
    assert item.slice_codes[1, :2].tolist() == [[0, 1], [1, 0]]
    assert item.room_codes[1].tolist() == [0, 1]
    smallest = SemanticCodes.from_features(tok, feats, counts, tie_break="smallest")
    assert smallest.room_codes.tolist() == [[0, 1], [0, 0]]
    with pytest.raises(ConfigError):
        majority_vote(item.slice_codes, item.slice_mask, 3, tie_break="random")


def test_vote_does_not_depend_on_segment_order(segments):
    features, counts, tokens = segments
    tok = RQKMeans(levels=3, codes=8, seed=0, iters=10).fit(features[np.arange(6)[None] < counts[:, None]])
    a = SemanticCodes.from_features(tok, features, counts, tokens)
    perm = np.array([np.r_[np.random.default_rng(i).permutation(c), np.arange(c, features.shape[1])] for i, c in enumerate(counts)])
    shuffled = np.take_along_axis(features, perm[..., None], 1)
    b = SemanticCodes.from_features(tok, shuffled, counts, tokens)
    assert torch.equal(a.room_codes, b.room_codes)
    assert (a.room_codes[EMPTY_ITEM] == -1).all() and not a.slice_mask[EMPTY_ITEM].any()
    assert (a.room_codes[np.flatnonzero(counts)] >= 0).all()


def test_slice_rules():
    counts = torch.tensor([1, 4, 5, 0])
    assert SliceRule(eval="first").segment(counts, training=False).tolist() == [0, 0, 0, 0]
    assert SliceRule(eval="middle").segment(counts, training=False).tolist() == [0, 1, 2, 0]
    assert SliceRule(eval="last").segment(counts, training=False).tolist() == [0, 3, 4, 0]
    many = torch.full((2000,), 4)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    r1, r2 = SliceRule().segment(many, True, g1), SliceRule().segment(many, True, g2)
    assert torch.equal(r1, r2) and set(r1.tolist()) == {0, 1, 2, 3}  # seeded, covers every segment
    with pytest.raises(ConfigError):
        SliceRule(eval="random")


def test_save_load_align(tmp_path, segments):
    features, counts, tokens = segments
    tok = RQKMeans(levels=2, codes=8, seed=0, iters=5).fit(features[np.arange(6)[None] < counts[:, None]])
    codes = SemanticCodes.from_features(tok, features, counts, tokens)
    path = codes.save(tmp_path / "codes.npz")
    back = SemanticCodes.load(path)
    assert torch.equal(back.slice_codes, codes.slice_codes) and torch.equal(back.room_codes, codes.room_codes)
    assert back.item_ids == tokens and back.n_codes == 8
    # align to a RecBole-like order: [PAD], two known tokens reversed, one unknown
    aligned = codes.align(["[PAD]", tokens[1], tokens[0], "not-an-item"])
    assert aligned.room_codes[0].tolist() == [-1, -1] and aligned.room_codes[3].tolist() == [-1, -1]
    assert torch.equal(aligned.room_codes[1], codes.room_codes[1]) and torch.equal(aligned.slice_codes[2], codes.slice_codes[0])


def test_corrupt_codes_file_is_a_checkpoint_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    for name in ("bad.npz", "other.npz", "missing.npz"):
        with pytest.raises(CheckpointError):
            SemanticCodes.load(tmp_path / name)
