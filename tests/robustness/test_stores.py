"""Hostile feature stores and outputs: ``--overwrite`` removes only what cva_rec wrote, damaged stores
and caches are one line (or rebuilt), an extraction where everything failed exits non-zero.

Table-driven over ``cva-rec extract-text`` as a user runs it (the refusal comes before the text
model is loaded, so these are fast), plus a seeded fuzz test that damages a valid store's files
at random and asserts that opening it either works or raises FeatureStoreError.
"""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cva_rec.data.dataset import bundled_data_path
from cva_rec.errors import CvaRecError, FeatureStoreError
from cva_rec.features import FeatureStoreWriter, align_to_items, open_store
from cva_rec.features.shared import shared_aligned_content
from cva_rec.features.store import partial_path
from tests.robustness.conftest import folder_hash

ITEMS = bundled_data_path() / "ml-100k" / "ml-100k.item"


def small_store(path: Path, n: int = 10, frames: int = 3, dim: int = 4, dtype: str = "float16") -> Path:
    rng = np.random.default_rng(0)
    w = FeatureStoreWriter(path, [f"i{k}" for k in range(n)], frames, dim, dtype=dtype)
    w.write(np.arange(n), rng.standard_normal((n, frames, dim)).astype(np.float32), rng.integers(1, frames + 1, n))
    return w.finalize()


def users_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("three years of work\n")
    (path / "data").mkdir()
    (path / "data" / "results.csv").write_text("a,b\n1,2\n")
    return path


# (what is at --out before the command, extra args, fragment of the one-line error)
OVERWRITE_CASES = [
    pytest.param("users-folder", ["--overwrite"], "is a folder that is not feature store", id="overwrite-users-folder"),
    pytest.param("users-folder", [], "is a folder that is not feature store", id="users-folder"),
    pytest.param("plain-file", ["--overwrite"], "is a file; refusing to write over or remove it", id="overwrite-plain-file"),
    pytest.param("plain-file", [], "is a file; refusing to write over or remove it", id="plain-file"),
    pytest.param("users-partial", ["--overwrite"], "is a folder that is not unfinished feature store", id="overwrite-users-partial"),
    pytest.param("store", [], "a feature store already exists", id="existing-store-without-overwrite"),
]


@pytest.mark.parametrize("setup,extra,fragment", OVERWRITE_CASES)
def test_overwrite_never_removes_what_cva_rec_did_not_write(tmp_path, cli, setup, extra, fragment):
    out = tmp_path / "out"
    if setup == "users-folder":
        users_folder(out)
    elif setup == "plain-file":
        out.write_text("my notes\n")
    elif setup == "users-partial":
        users_folder(partial_path(out))
    else:
        small_store(out)
    before = folder_hash(tmp_path)
    result = cli("extract-text", "--items", str(ITEMS), "--out", str(out), *extra)
    result.assert_one_line_error(fragment)
    assert folder_hash(tmp_path) == before  # nothing removed, nothing half-written, no temp folder left


def test_overwrite_replaces_a_store_cva_rec_wrote(tmp_path):
    out = small_store(tmp_path / "store")
    (out / "meta.json").read_text()
    w = FeatureStoreWriter(out, ["x", "y"], 1, 2, dtype="float32", overwrite=True)
    w.write([0, 1], np.ones((2, 1, 2), np.float32), [1, 1])
    w.finalize()
    assert open_store(out).item_ids == ["x", "y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no .old, .partial or temp left


def test_every_video_failing_exits_non_zero(tmp_path, cli):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "zero.mp4").write_bytes(b"")
    (videos / "notavideo.mp4").write_text("plain text, not a video\n")
    result = cli("extract-video", "--videos", str(videos), "--out", str(tmp_path / "store"), "--quiet")
    result.assert_one_line_error("every one of the 2 videos failed")
    assert "FAILED zero" in result.out  # the summary still lists each failure


# -- the aligned-content cache -----------------------------------------------------------------------
def _damage(folder: Path, how: str) -> None:
    f = folder / "features.npy"
    data = bytearray(f.read_bytes())
    if how == "truncate":
        f.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flip":
        data[-5] ^= 0xFF
        f.write_bytes(bytes(data))
    elif how == "header":
        f.write_bytes(b"garbage" + bytes(data[7:]))
    elif how == "manifest":
        (folder / "manifest.json").write_text("{")
    elif how == "missing":
        (folder / "timestamps.npy").unlink()


@pytest.mark.parametrize("how", ["truncate", "flip", "header", "manifest", "missing"])
def test_damaged_content_cache_is_detected_and_rebuilt(tmp_path, how, caplog):
    store = open_store(small_store(tmp_path / "store", dtype="float32"))
    tokens = ["[PAD]", "i3", "i1", "i7"]
    cache = tmp_path / "cache"
    first = shared_aligned_content(store, tokens, cache, dtype=torch.float32)
    (folder,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    del first
    _damage(folder, how)
    with caplog.at_level(logging.WARNING, logger="cva_rec.features.shared"):
        again = shared_aligned_content(store, tokens, cache, dtype=torch.float32)
    assert "is damaged" in caplog.text
    reference = align_to_items(store, tokens, dtype=torch.float32)
    torch.testing.assert_close(again.features, reference.features)
    torch.testing.assert_close(again.num_frames, reference.num_frames)
    assert [p.name for p in cache.iterdir()] == [folder.name]  # rebuilt in place, nothing left aside


def test_unwritable_cache_folder_keeps_content_in_memory(tmp_path, monkeypatch, caplog):
    import cva_rec.features.shared as shared
    from cva_rec.errors import FileSystemError

    def refuse(near):
        raise FileSystemError(f"{near} is on a read-only file system", 30, str(near))

    monkeypatch.setattr(shared, "make_temp_dir", refuse)
    store = open_store(small_store(tmp_path / "store"))
    with caplog.at_level(logging.WARNING, logger="cva_rec.features.shared"):
        content = shared_aligned_content(store, ["[PAD]", "i2"], tmp_path / "cache", dtype=torch.float16)
    assert "content cache not written" in caplog.text
    torch.testing.assert_close(content.features, align_to_items(store, ["[PAD]", "i2"], dtype=torch.float16).features)


# -- fuzz ---------------------------------------------------------------------------------------------
def _fuzz_once(store: Path, rng: random.Random) -> None:
    files = sorted(p for p in store.iterdir() if p.is_file())
    f = rng.choice(files)
    data = bytearray(f.read_bytes())
    kind = rng.randrange(6)
    if kind == 0 and data:  # flip bytes
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:  # truncate
        data = data[: rng.randrange(len(data) + 1)]
    elif kind == 2:  # append garbage
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 3 and f.suffix == ".json":  # a structurally wrong but valid JSON value
        obj = json.loads(data.decode())
        if isinstance(obj, dict):
            key = rng.choice(sorted(obj))
            obj[key] = rng.choice([None, -1, 0, 10**12, "x", [], {}, 1.5, True])
        else:
            obj = rng.choice([obj[:-1], obj + obj[:1], [1, 2], {}, "s", None])
        data = bytearray(json.dumps(obj).encode())
    elif kind == 4:  # delete the file
        f.unlink()
        return
    else:  # replace with another store file's bytes
        data = bytearray(rng.choice(files).read_bytes())
    f.write_bytes(bytes(data))


def test_fuzzed_stores_never_escape_as_tracebacks(tmp_path):
    """300 seeded damages of a valid store; open_store (full validation) and reading every row either
    work or raise FeatureStoreError."""
    import shutil

    rng = random.Random(7)
    pristine = small_store(tmp_path / "pristine")
    outcomes = {"ok": 0, "FeatureStoreError": 0}
    for case in range(300):
        store = tmp_path / f"s{case % 4}"
        if store.exists():
            shutil.rmtree(store)
        shutil.copytree(pristine, store)
        for _ in range(rng.randint(1, 2)):
            _fuzz_once(store, rng)
        try:
            opened = open_store(store)
            opened.get_rows(np.arange(len(opened)))
            outcomes["ok"] += 1
        except FeatureStoreError:
            outcomes["FeatureStoreError"] += 1
        except CvaRecError as exc:  # pragma: no cover - a different one-line error would also be acceptable
            outcomes.setdefault(type(exc).__name__, 0)
            outcomes[type(exc).__name__] += 1
    assert outcomes["FeatureStoreError"] > 150, outcomes


def test_tokenize_replaces_only_its_own_outputs(tmp_path, cli):
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32))
    out = tmp_path / "codes"
    args = ("tokenize", str(vectors), "--out", str(out), "--levels", "2", "--codes", "4", "--iters", "3")
    assert cli(*args).code == 0
    assert cli(*args).code == 0  # its own files: replaced
    (out / "codes.npz").write_bytes(b"someone else's codes")
    before = folder_hash(out)
    cli(*args).assert_one_line_error(f"{out / 'codes.npz'} exists and was not written by `cva-rec tokenize`")
    assert folder_hash(out) == before


@pytest.mark.parametrize("how", ["truncate", "missing", "manifest"])
def test_damaged_sequence_cache_is_detected_and_rebuilt(tmp_path, how, caplog):
    from cva_rec.data.streaming.cache import cached_sequences
    from cva_rec.data.streaming.inter_file import read_inter
    from cva_rec.data.streaming.sequences import build_sequences

    inter = bundled_data_path() / "ml-100k" / "ml-100k.inter"
    builds = []

    def load():
        def build():
            builds.append(1)
            return build_sequences(read_inter(inter, "user_id", "item_id", "timestamp"), 5, 0)
        return cached_sequences(tmp_path / "cache", "ml-100k", inter, {"min_user": 5, "min_item": 0}, build)

    first, _ = load()
    items = np.array(first.items)
    (folder,) = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    del first
    if how == "truncate":
        data = (folder / "items.npy").read_bytes()
        (folder / "items.npy").write_bytes(data[: len(data) // 2])
    elif how == "missing":
        (folder / "indptr.npy").unlink()
    else:
        (folder / "manifest.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="cva_rec.data.streaming.cache"):
        again, hit = load()
    assert not hit and len(builds) == 2 and "is damaged" in caplog.text
    assert np.array_equal(np.asarray(again.items), items)
    # rebuilt in place, nothing left aside (the engine's build lock file may stay: it holds no data)
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == [folder.name]
