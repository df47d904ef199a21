"""Seeded mutations of a real shard set: ``cva-rec merge-stores`` gives the unmutated merge byte for byte, or one line.

Three shard stores are written by the feature-store writer in shard mode, with the metadata an
extraction records (encoder, the sha256 of its item file). Each case copies them and damages one
thing: a shard missing, given twice or from another extraction (other items / dim / encoder),
``item_ids.json`` reordered / truncated / with a foreign id, the shard entry of ``meta.json`` edited,
``features.npy`` truncated or one finite value changed, other ``meta.json`` fields edited or the file
garbled. ``merge-stores`` must then write a store byte-identical to the merge of the unmutated set, or
exit 2 with one line and leave nothing at ``--out`` (no partial folder, no temporary file).
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from cva_rec.features import FeatureStoreWriter
from cva_rec.features.store import FEATURES_FILE, ITEM_IDS_FILE, META_FILE
from data_prep.shards import shard_metadata, shard_store_path

N_ITEMS, COUNT, FRAMES, DIM = 11, 3, 2, 4
SEEDS = range(3)


def write_shards(out: Path, prefix: str = "v", dim: int = DIM, encoder: str = "test-encoder") -> list:
    """The ``COUNT`` shard stores of one extraction of ``N_ITEMS`` items into ``out``."""
    ids = [f"{prefix}{k}" for k in range(N_ITEMS)]
    source = hashlib.sha256("\n".join(ids).encode()).hexdigest()  # as extract-text records its item file
    rng = np.random.default_rng(len(prefix) + dim)
    features = rng.standard_normal((N_ITEMS, FRAMES, dim)).astype(np.float32)
    paths = []
    for index in range(COUNT):
        rows = list(range(index, N_ITEMS, COUNT))
        w = FeatureStoreWriter(shard_store_path(out, index, COUNT), [ids[r] for r in rows], FRAMES, dim,
                               metadata={"shard": shard_metadata(N_ITEMS, index, COUNT), "encoder": encoder,
                                         "source_hashes": {"items.item": source}})
        w.write(np.arange(len(rows)), features[rows], np.full(len(rows), FRAMES))
        paths.append(w.finalize())
    return paths


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory):
    """The shard set, the files of its merge, and the shards of other extractions (same indices)."""
    from data_prep.merge_stores import merge_stores

    root = tmp_path_factory.mktemp("shard_fuzz")
    shards = write_shards(root / "store")
    merged = merge_stores(shards, root / "merged")
    others = {"items": write_shards(root / "other_items", prefix="w"), "dim": write_shards(root / "other_dim", dim=DIM + 2),
              "encoder": write_shards(root / "other_encoder", encoder="another-encoder")}
    return {"shards": shards, "merged": {p.name: p.read_bytes() for p in merged.iterdir()}, "others": others}


def _edit_json(path: Path, edit) -> None:
    value = json.loads(path.read_text())
    value = edit(value) or value
    path.write_text(json.dumps(value))


def _edit_features(shard: Path, rng: random.Random, truncate: bool) -> None:
    raw = bytearray((shard / FEATURES_FILE).read_bytes())
    if truncate:
        (shard / FEATURES_FILE).write_bytes(bytes(raw[:rng.randrange(len(raw))]))
        return
    feats = np.load(shard / FEATURES_FILE, mmap_mode="r+")  # in place: same size, another ordinary number
    row, frame, col = rng.randrange(feats.shape[0]), rng.randrange(feats.shape[1]), rng.randrange(feats.shape[2])
    feats[row, frame, col] = feats[row, frame, col] + 0.25
    feats.flush()
    del feats


def mutate(kind: str, rng: random.Random, shards: list, others: dict, spare: Path) -> list:
    """Damage the copied shard set ``shards`` the way ``kind`` names; returns the inputs to merge."""
    i = rng.randrange(COUNT)
    s = shards[i]
    if kind == "missing":
        return shards[:i] + shards[i + 1:]
    if kind == "duplicated":
        shutil.copytree(s, spare)
        return [*shards, spare]
    if kind.startswith("foreign_"):
        shutil.copytree(others[kind.split("_", 1)[1]][i], spare)
        return shards[:i] + [spare] + shards[i + 1:]
    if kind == "ids_reordered":
        _edit_json(s / ITEM_IDS_FILE, lambda ids: ids[::-1] if rng.random() < 0.5 else ids[1:] + ids[:1])
    elif kind == "ids_truncated":
        _edit_json(s / ITEM_IDS_FILE, lambda ids: ids[:rng.randrange(len(ids))])
    elif kind == "ids_foreign":
        _edit_json(s / ITEM_IDS_FILE, lambda ids: ids.__setitem__(rng.randrange(len(ids)), "intruder"))
    elif kind == "manifest_edited":
        field, value = rng.choice([("index", (i + 1) % COUNT), ("count", COUNT + 1), ("n_items", N_ITEMS + 3),
                                   ("assignment", "contiguous")])
        _edit_json(s / META_FILE, lambda meta: meta["shard"].__setitem__(field, value))
    elif kind == "features_truncated":
        _edit_features(s, rng, truncate=True)
    elif kind == "value_changed":
        _edit_features(s, rng, truncate=False)
    elif kind == "meta_field_edited":
        field, value = rng.choice([("dim", DIM + 1), ("dtype", "float32"), ("n_items", 1), ("encoder", "other"),
                                   ("max_frames", FRAMES + 1), ("source_hashes", {"items.item": "0" * 64}),
                                   ("item_ids_sha256", "0" * 64), ("format", "not-a-store")])
        _edit_json(s / META_FILE, lambda meta: meta.__setitem__(field, value))
    elif kind == "meta_field_removed":
        _edit_json(s / META_FILE, lambda meta: meta.pop(rng.choice(sorted(k for k in meta if k != "created"))))
    elif kind == "meta_garbled":
        raw = (s / META_FILE).read_bytes()
        (s / META_FILE).write_bytes(rng.choice([raw[:rng.randrange(len(raw))], b"", b"[1, 2]", b"\xff\xfe binary"]))
    else:
        raise AssertionError(kind)
    return shards


KINDS = ["missing", "duplicated", "foreign_items", "foreign_dim", "foreign_encoder", "ids_reordered", "ids_truncated",
         "ids_foreign", "manifest_edited", "features_truncated", "value_changed", "meta_field_edited",
         "meta_field_removed", "meta_garbled"]


@pytest.mark.parametrize("kind, seed", [(k, s) for k in KINDS for s in SEEDS], ids=lambda v: str(v))
def test_merge_of_a_mutated_shard_set_is_the_original_merge_or_one_line(cli, shard_set, tmp_path, kind, seed):
    work = tmp_path / "work"
    shards = [Path(shutil.copytree(s, work / "store.shards" / s.name)) for s in shard_set["shards"]]
    inputs = mutate(kind, random.Random(f"{kind}-{seed}"), shards, shard_set["others"], work / "spare")
    listing = sorted(p.name for p in work.iterdir())
    out = work / "merged"
    result = cli("merge-stores", *map(str, inputs), "--out", str(out))
    if result.code == 0:  # only when nothing that matters changed: then the very same bytes
        assert {p.name: p.read_bytes() for p in out.iterdir()} == shard_set["merged"], f"{kind}: merged other bytes"
    else:
        result.assert_one_line_error("")
        assert sorted(p.name for p in work.iterdir()) == listing, "a partial output or temporary was left"
        assert not out.exists()
