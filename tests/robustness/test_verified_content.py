"""Stores whose files changed after they were written: a different finite value, reordered item ids.

Nothing in the arrays looks wrong (no NaN, right shapes), so only the content hashes recorded at
write time can tell; every open checks them, remembering a file's digest by size and mtime.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

from cva_rec import fingerprints
from cva_rec.errors import FeatureStoreError
from cva_rec.features import FeatureStoreWriter, open_store
from cva_rec.features.store import FEATURES_FILE, ITEM_IDS_FILE, META_FILE, record_content_hashes
from data_prep.shards import shard_metadata, shard_store_path
from tests.robustness.conftest import folder_hash
from tests.robustness.test_stores import small_store


def _flip_one_value(store: Path, row: int = 3) -> None:
    """Change one stored feature to another ordinary finite number, in place (same size, same inode)."""
    feats = np.load(store / FEATURES_FILE, mmap_mode="r+")
    feats[row, 0, 0] = feats[row, 0, 0] + np.float16(0.5)
    feats.flush()
    del feats


def _age(store: Path, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    for f in store.iterdir():
        os.utime(f, (t, t))


def test_flipped_finite_value_is_refused_at_open(tmp_path, cli):
    store = small_store(tmp_path / "store")
    open_store(store)
    _flip_one_value(store)
    with pytest.raises(FeatureStoreError, match="features.npy: contents differ from the sha256 recorded in meta.json"):
        open_store(store)
    # as a user meets it: one line naming the file and how to rebuild
    result = cli("tokenize", str(store), "--out", str(tmp_path / "codes"), "--levels", "1", "--codes", "2")
    result.assert_one_line_error(f"{store / FEATURES_FILE}: contents differ")
    assert "rebuild the store" in result.err and not (tmp_path / "codes").exists()


def test_reordered_item_ids_are_refused_at_open(tmp_path):
    store = small_store(tmp_path / "store")
    ids = json.loads((store / ITEM_IDS_FILE).read_text())
    ids[0], ids[1] = ids[1], ids[0]
    (store / ITEM_IDS_FILE).write_text(json.dumps(ids))
    with pytest.raises(FeatureStoreError, match="item_ids.json: the item ids are not those the store was written with"):
        open_store(store, validate="fast")


def _shards(out: Path, n: int = 6, count: int = 2) -> list[Path]:
    rng = np.random.default_rng(0)
    ids = [f"v{k}" for k in range(n)]
    paths = []
    for index in range(count):
        rows = list(range(index, n, count))
        w = FeatureStoreWriter(shard_store_path(out, index, count), [ids[r] for r in rows], 2, 3,
                               metadata={"shard": shard_metadata(n, index, count), "encoder": "test"})
        w.write(np.arange(len(rows)), rng.standard_normal((len(rows), 2, 3)).astype(np.float32), np.full(len(rows), 2))
        paths.append(w.finalize())
    return paths


def test_merge_stores_refuses_a_shard_with_reordered_item_ids(tmp_path, cli):
    out = tmp_path / "joined"
    shards = _shards(out)
    ids = json.loads((shards[1] / ITEM_IDS_FILE).read_text())
    (shards[1] / ITEM_IDS_FILE).write_text(json.dumps(ids[::-1]))  # same items, other rows: features would swap
    before = folder_hash(tmp_path)
    result = cli("merge-stores", str(out.with_name("joined.shards")), "--out", str(out))
    result.assert_one_line_error(f"{shards[1] / ITEM_IDS_FILE}: the item ids are not those the store was written with")
    assert folder_hash(tmp_path) == before and not out.exists()


def test_merge_stores_refuses_a_shard_with_a_changed_value(tmp_path, cli):
    out = tmp_path / "joined"
    shards = _shards(out)
    _flip_one_value(shards[0], row=1)
    result = cli("merge-stores", str(out.with_name("joined.shards")), "--out", str(out))
    result.assert_one_line_error(f"{shards[0] / FEATURES_FILE}: contents differ")
    assert not out.exists()


def test_verification_is_remembered_and_forgotten_when_size_or_mtime_change(tmp_path, monkeypatch):
    store = small_store(tmp_path / "store")
    _age(store, 3600)  # older than the racy window: digests may be remembered
    hashed = []
    real = fingerprints.file_sha256
    monkeypatch.setattr(fingerprints, "file_sha256", lambda p, *a, **k: hashed.append(Path(p).name) or real(p, *a, **k))
    open_store(store)
    first = sorted(hashed)
    assert FEATURES_FILE in first
    hashed.clear()
    open_store(store)
    open_store(store, validate="fast")
    assert hashed == []  # nothing read again: same size, mtime and inode
    _flip_one_value(store)
    _age(store, 1800)  # a new mtime (still old enough to be remembered)
    with pytest.raises(FeatureStoreError, match="features.npy: contents differ"):
        open_store(store)
    assert FEATURES_FILE in hashed


def test_changed_value_with_restored_mtime_but_other_size_is_caught(tmp_path):
    store = small_store(tmp_path / "store")
    _age(store, 3600)
    open_store(store)  # remembered
    f = store / FEATURES_FILE
    st = f.stat()
    with open(f, "ab") as fh:
        fh.write(b"\0" * 8)  # trailing bytes: numpy still reads the array, the size differs
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(FeatureStoreError, match="features.npy: contents differ|unreadable or truncated"):
        open_store(store)


def test_store_written_before_hashes_opens_with_a_warning_and_can_be_hashed(tmp_path, caplog, cli):
    store = small_store(tmp_path / "store")
    meta = json.loads((store / META_FILE).read_text())
    del meta["content_sha256"]
    (store / META_FILE).write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        assert len(open_store(store)) == 10
    assert "written without content hashes" in caplog.text and "cva-rec hash-store" in caplog.text
    assert cli("hash-store", str(store)).code == 0
    assert set(json.loads((store / META_FILE).read_text())["content_sha256"]) >= {FEATURES_FILE, ITEM_IDS_FILE}
    _flip_one_value(store)
    with pytest.raises(FeatureStoreError, match="contents differ"):
        open_store(store)
    record_content_hashes_refuses = cli("hash-store", str(store))
    record_content_hashes_refuses.assert_one_line_error("contents differ")  # never re-vouches for a changed store


def test_old_store_with_reordered_ids_is_still_caught_by_what_it_records(tmp_path):
    store = small_store(tmp_path / "store")
    meta = json.loads((store / META_FILE).read_text())
    del meta["content_sha256"]
    (store / META_FILE).write_text(json.dumps(meta))
    ids = json.loads((store / ITEM_IDS_FILE).read_text())
    (store / ITEM_IDS_FILE).write_text(json.dumps(ids[::-1]))
    with pytest.raises(FeatureStoreError, match="item ids are not those"):
        record_content_hashes(store)


def test_codes_file_with_an_edited_code_is_refused_at_load(tmp_path):
    """A script that loads every array of codes.npz, changes one code and saves them all back (the recorded
    hash included) is caught; a file from before the hash loads as before."""
    import torch

    from cva_rec.errors import CheckpointError
    from cva_rec.semantic_ids.codes import SemanticCodes

    room = torch.tensor([[0, 1], [1, 2], [2, 3]])
    path = SemanticCodes(room[:, None, :].clone(), torch.ones(3, 1, dtype=torch.bool), room, 4, ["a", "b", "c"]).save(
        tmp_path / "codes.npz")
    assert SemanticCodes.load(path).room_codes.tolist() == room.tolist()
    arrays = dict(np.load(path))
    arrays["room_codes"][1, 0] = 3  # another valid code
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="codes.npz: its codes differ from the sha256 recorded in the file"):
        SemanticCodes.load(path)
    del arrays["content_sha256"]  # written before the hash existed
    np.savez(path, **arrays)
    assert SemanticCodes.load(path).room_codes[1, 0] == 3


def test_tokenizer_with_an_edited_centroid_is_refused_at_load(tmp_path):
    import torch

    from cva_rec.errors import CheckpointError
    from cva_rec.semantic_ids.rq_kmeans import RQKMeans

    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    path = RQKMeans(levels=2, codes=4, iters=3, seed=0).fit(x).save(tmp_path / "tokenizer.pt")
    RQKMeans.load(path)
    state = torch.load(path, weights_only=True)
    state["centroids"][0, 1, 0] += 0.25  # another finite number
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="tokenizer.pt: its contents differ from the sha256 recorded"):
        RQKMeans.load(path)
