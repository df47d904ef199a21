"""Token store: (frame, patch position, vector) tokens per item, padded + masked; resumable; read by CVA and Perceiver IO."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cva_rec.encoders.registry import build_encoder
from cva_rec.errors import FeatureStoreError
from cva_rec.features import FeatureStoreWriter, open_store
from cva_rec.features.tokens import POSITIONS_FILE, TokenStoreWriter, align_tokens_to_items, open_token_store

GRID = (3, 4)
DIM = 8


def _item(rng, n_tokens):
    feats = rng.standard_normal((n_tokens, DIM)).astype(np.float32)
    stamps = np.sort(rng.uniform(0, 10, n_tokens)).astype(np.float32)
    pos = np.stack([np.arange(n_tokens) // 3, rng.integers(-1, GRID[0] * GRID[1], n_tokens)], axis=1)
    return feats, stamps, pos


def _write(writer, rows, items):
    t = max(len(i[0]) for i in items)
    feats = np.zeros((len(rows), t, DIM), np.float32)
    stamps = np.zeros((len(rows), t), np.float32)
    pos = np.zeros((len(rows), t, 2), np.int64)
    for j, (f, s, p) in enumerate(items):
        feats[j, :len(f)], stamps[j, :len(f)], pos[j, :len(f)] = f, s, p
    writer.write(rows, feats, [len(i[0]) for i in items], stamps, pos)


def test_round_trip_resume_and_padding(tmp_path):
    rng = np.random.default_rng(0)
    items = {"a": _item(rng, 7), "b": _item(rng, 2), "c": _item(rng, 10)}
    path = tmp_path / "tokens"
    w = TokenStoreWriter(path, list(items), 10, DIM, GRID, dtype="float32", metadata={"encoder": "test"})
    _write(w, [0], [items["a"]])
    del w  # killed before finalize: the partial folder stays
    w = TokenStoreWriter(path, list(items), 10, DIM, GRID, dtype="float32", metadata={"encoder": "test"})
    assert w.pending_rows().tolist() == [1, 2]
    _write(w, [1, 2], [items["b"], items["c"]])
    w.finalize()
    store = open_token_store(path)
    assert store.grid == GRID and store.store.meta["tokens"]["grid"] == list(GRID)
    for item_id, (f, s, p) in items.items():
        feats, stamps, pos = store.get(item_id)
        np.testing.assert_array_equal(feats, f)
        np.testing.assert_array_equal(stamps, s)
        np.testing.assert_array_equal(pos, p)
    assert np.all(store.positions[1, 2:] == 0)  # padding is zero
    with pytest.raises(FeatureStoreError, match="patch indices must be in"):
        bad = TokenStoreWriter(tmp_path / "bad", ["x"], 2, DIM, GRID)
        bad.write([0], np.zeros((1, 2, DIM)), [1], np.zeros((1, 2)), np.array([[[0, 12], [0, 0]]]))


def test_plain_store_is_not_a_token_store(tmp_path):
    w = FeatureStoreWriter(tmp_path / "plain", ["a"], 2, DIM)
    w.write([0], np.ones((1, 2, DIM)), [2])
    w.finalize()
    with pytest.raises(FeatureStoreError, match="without tokens"):
        open_token_store(tmp_path / "plain")


@pytest.fixture
def token_content(tmp_path):
    rng = np.random.default_rng(1)
    ids = [f"v{i}" for i in range(5)]
    items = [_item(rng, n) for n in (6, 1, 9, 4, 12)]
    w = TokenStoreWriter(tmp_path / "t", ids, 12, DIM, GRID)
    _write(w, list(range(5)), items)
    w.finalize()
    store = open_token_store(tmp_path / "t")
    # RecBole order: padding first, then a permutation of the store's items
    return align_tokens_to_items(store, ["[PAD]", "v3", "v0", "v4", "v2", "v1"]), store


def test_alignment_carries_positions(token_content):
    content, store = token_content
    assert content.grid == GRID and tuple(content.positions.shape) == (6, 12, 2)
    np.testing.assert_array_equal(content.positions[4, :9].numpy(), store.get("v2")[2])
    assert content.num_frames.tolist() == [0, 4, 6, 12, 9, 1]
    assert content.positions[0].abs().sum() == 0


@pytest.mark.parametrize("name,options", [("cva", {"attend": "frames", "depth": 1, "latent_dim": 16, "dim_head": 8}),
                                          ("perceiver_io", {"depth": 1, "num_latents": 4, "latent_dim": 16,
                                                            "dim_head": 8, "query_dim": 16})])
def test_cva_frames_and_perceiver_read_tokens_with_positions(token_content, name, options):
    content, _ = token_content
    torch.manual_seed(0)
    enc = build_encoder({"name": name, **options}, n_items=6, output_dim=12, content=content)
    assert enc.patch_position is not None and enc.patch_position.grid == GRID
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    out = enc(ids)
    assert out.shape == (2, 3, 12) and torch.isfinite(out).all() and out[1, 2].abs().sum() == 0
    out.sum().backward()
    assert enc.patch_position.table.weight.grad.abs().sum() > 0
    # moving one token to another patch changes that item's vector only: positions are read
    before = enc(torch.tensor([1, 2])).detach()
    content.positions[1, 0, 1] = (content.positions[1, 0, 1] + 5) % (GRID[0] * GRID[1])
    after = enc(torch.tensor([1, 2])).detach()
    assert not torch.allclose(before[0], after[0]) and torch.allclose(before[1], after[1])


def test_frame_content_has_no_patch_position(token_content):
    from cva_rec.features.content import ItemContent

    content, _ = token_content
    plain = ItemContent(content.features, content.num_frames, content.timestamps)
    enc = build_encoder({"name": "cva", "attend": "frames", "depth": 1}, n_items=6, output_dim=12, content=plain)
    assert enc.patch_position is None
    with pytest.raises(FeatureStoreError, match="no token positions"):
        plain.gather_positions(torch.tensor([1]))


def test_positions_file_travels_with_the_store(tmp_path):
    w = TokenStoreWriter(tmp_path / "t", ["a"], 3, DIM, GRID)
    w.write([0], np.ones((1, 3, DIM)), [3], np.zeros((1, 3)), np.array([[[0, 1], [0, 2], [1, -1]]]))
    path = w.finalize()
    assert (path / POSITIONS_FILE).is_file() and not (tmp_path / "t.partial").exists()
    assert open_store(path).meta["tokens"]["positions_file"] == POSITIONS_FILE


def test_shared_aligned_content_carries_token_positions(token_content, tmp_path):
    from cva_rec.features.shared import shared_aligned_content

    content, store = token_content
    tokens = ["[PAD]", "v3", "v0", "v4", "v2", "v1"]
    for _ in range(2):  # built, then mapped from the cache
        shared = shared_aligned_content(store.store, tokens, tmp_path / "cache")
        assert shared.grid == GRID
        assert torch.equal(shared.gather_positions(torch.arange(6)), content.gather_positions(torch.arange(6)))
