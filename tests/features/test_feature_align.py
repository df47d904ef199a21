"""Alignment of a feature store to RecBole internal item ids, with each missing-item policy."""
from __future__ import annotations

import os
import zlib

import numpy as np
import pytest
import torch

import cva_rec  # noqa: F401  (RecBole shims before any recbole import)
from cva_rec.errors import ConfigError, FeatureStoreError
from cva_rec.features import FeatureStoreWriter, ItemContent, align_to_dataset, align_to_items, open_store

MAX_FRAMES, DIM = 4, 6


def _features(token: str) -> tuple[np.ndarray, int]:
    """Deterministic content per token: frame j of item t is t-seeded noise; count 1..4."""
    rng = np.random.default_rng(zlib.crc32(token.encode()))
    return rng.normal(size=(MAX_FRAMES, DIM)).astype(np.float32), int(rng.integers(1, MAX_FRAMES + 1))


def _store(tmp_path, tokens):
    w = FeatureStoreWriter(tmp_path / "store", tokens, MAX_FRAMES, DIM, dtype="float32")
    f, n = zip(*(_features(t) for t in tokens))
    w.write(np.arange(len(tokens)), np.stack(f), np.array(n),
            np.tile(np.arange(MAX_FRAMES, dtype=np.float32) * 2.0, (len(tokens), 1)))
    return open_store(w.finalize())


def test_rows_follow_recbole_ids_not_store_order(tmp_path):
    store = _store(tmp_path, ["c", "a", "b"])  # store order differs from the dataset's
    content = align_to_items(store, ["[PAD]", "a", "b", "c"], dtype=torch.float32)
    assert isinstance(content, ItemContent) and content.features.shape == (4, MAX_FRAMES, DIM)
    assert content.num_frames[0] == 0 and not content.features[0].any()
    for i, token in enumerate(["a", "b", "c"], start=1):
        feats, n = _features(token)
        assert content.num_frames[i] == n
        np.testing.assert_array_equal(content.features[i, :n].numpy(), feats[:n])
        assert not content.features[i, n:].any()
    frames, mask, ts = content.gather(torch.tensor([3, 0]))
    assert mask[0].sum() == _features("c")[1] and not mask[1].any()
    assert ts[0, 1] == 2.0


def test_missing_items_error_lists_them(tmp_path):
    store = _store(tmp_path, ["a", "b"])
    tokens = ["[PAD]", "a"] + [f"new{i}" for i in range(12)] + ["b"]
    with pytest.raises(FeatureStoreError, match=r"12 of 14 dataset items have no features.*'new0'.*'new9'\]"):
        align_to_items(store, tokens)


def test_missing_zeros_policy(tmp_path):
    store = _store(tmp_path, ["a", "b"])
    content = align_to_items(store, ["[PAD]", "a", "zz", "b"], missing="zeros", dtype=torch.float32)
    assert content.num_frames.tolist() == [0, _features("a")[1], 0, _features("b")[1]]
    assert not content.features[2].any()


def test_missing_mean_policy_uses_valid_frames_only(tmp_path):
    store = _store(tmp_path, ["a", "b", "unused"])
    content = align_to_items(store, ["[PAD]", "a", "zz", "b"], missing="mean", dtype=torch.float32)
    (fa, na), (fb, nb) = _features("a"), _features("b")
    want = np.concatenate([fa[:na], fb[:nb]]).mean(axis=0)  # the dataset's items, not the whole store
    assert content.num_frames[2] == 1
    np.testing.assert_allclose(content.features[2, 0].numpy(), want, rtol=1e-5, atol=1e-6)
    assert not content.features[2, 1:].any()


def test_bad_policy_and_pad_are_clear_errors(tmp_path):
    store = _store(tmp_path, ["a"])
    with pytest.raises(ConfigError, match="'drop' would renumber"):
        align_to_items(store, ["[PAD]", "a"], missing="drop")
    with pytest.raises(ConfigError, match="unknown missing-features policy 'skip'"):
        align_to_items(store, ["[PAD]", "a"], missing="skip")
    with pytest.raises(FeatureStoreError, match=r"item_tokens\[0\] must be '\[PAD\]'"):
        align_to_items(store, ["a"])
    with pytest.raises(ConfigError, match=r"max_frames must be in \[1, 4\]"):
        align_to_items(store, ["[PAD]", "a"], max_frames=5)


def test_max_frames_keeps_the_first_k(tmp_path):
    store = _store(tmp_path, ["a", "b"])
    content = align_to_items(store, ["[PAD]", "a", "b"], max_frames=2, dtype=torch.float32)
    assert content.features.shape == (3, 2, DIM)
    for i, token in enumerate(["a", "b"], start=1):
        feats, n = _features(token)
        assert content.num_frames[i] == min(n, 2)
        np.testing.assert_array_equal(content.features[i, : min(n, 2)].numpy(), feats[: min(n, 2)])


def test_float16_buffer(tmp_path):
    store = _store(tmp_path, ["a"])
    content = align_to_items(store, ["[PAD]", "a"])
    assert content.features.dtype == torch.float16


def test_align_to_a_real_recbole_dataset(tmp_path):
    """Bundled ml-100k: a store covering all but 5 items, in reversed order, aligned by token."""
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset

    root = os.path.join(os.path.dirname(recbole.__file__), "dataset_example")
    cfg = Config(model="SASRec", dataset="ml-100k", config_dict={
        "data_path": root, "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "train_neg_sample_args": None, "show_progress": False, "state": "ERROR", "checkpoint_dir": str(tmp_path / "ckpt"),
    })
    dataset = create_dataset(cfg)
    tokens = list(dataset.field2id_token[dataset.iid_field])
    assert tokens[0] == "[PAD]" and len(tokens) == 1683
    covered = tokens[:0:-1][5:]  # reversed, without the 5 last internal ids
    store = _store(tmp_path, covered)
    with pytest.raises(FeatureStoreError, match="5 of 1682 dataset items have no features"):
        align_to_dataset(store, dataset)
    content = align_to_dataset(store, dataset, missing="zeros", dtype=torch.float32)
    assert content.n_items == dataset.item_num == 1683
    for internal_id in [1, 500, 1677]:
        feats, n = _features(tokens[internal_id])
        np.testing.assert_array_equal(content.features[internal_id, :n].numpy(), feats[:n])
    assert content.num_frames[-5:].tolist() == [0] * 5
