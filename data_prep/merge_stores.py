"""``merge-stores``: validate the shard stores of one extraction and join them into one store.

Refused (one-line :class:`FeatureStoreError`, nothing written): a shard that is unfinished
(only ``<shard>.partial`` exists), a shard whose files differ from the content hashes in its
``meta.json`` (a changed value; a reordered ``item_ids.json``, whose rows would land on other
items: checked by :func:`~cva_rec.features.store.open_store`), missing shard indices, the same index twice or item ids in
two shards (overlap), shards of different shard counts or extractions (any difference in
``meta.json`` besides the shard's own rows: encoder, sampler, config, source hashes...), and
shards whose size is not their round-robin share of the listing.

The joined store is written through the same :class:`FeatureStoreWriter` as a single-process
run, with the same metadata (the ``shard`` entry dropped, failures and codec notes re-joined in
item order, ``created`` = the earliest shard's), so it is byte-identical to the store a single
process would have written for the same videos (tested). It is resumable like any store.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from cva_rec.errors import FeatureStoreError
from cva_rec.features.store import STRUCTURAL_KEYS, FeatureStore, FeatureStoreWriter, open_store, partial_path
from cva_rec.features.tokens import TOKENS_KEY, TokenStoreWriter, is_token_store, open_token_store

# per-shard keys of meta.json; everything else must agree across shards
PER_SHARD_KEYS = ("shard", "failures", "n_failures", "codec_saliency", "created", *STRUCTURAL_KEYS)
_CHUNK_ROWS = 2048


def find_shards(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Shard store folders from folders of shards (``<out>.shards``) and/or shard store paths."""
    found: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.name.endswith(".partial"):
            raise FeatureStoreError(f"shard {p} is unfinished: resume its extraction (same command) first")
        if (p / "meta.json").is_file():
            found.append(p)
        elif p.is_dir():
            inner = sorted(q for q in p.iterdir() if q.is_dir())
            unfinished = [q for q in inner if q.name.endswith(".partial")]
            if unfinished:
                raise FeatureStoreError(f"{len(unfinished)} unfinished shards in {p} (e.g. {unfinished[0].name}): "
                                        "resume their extraction first")
            found += [q for q in inner if (q / "meta.json").is_file()]
        elif partial_path(p).exists():
            raise FeatureStoreError(f"shard {p} is unfinished (only {partial_path(p)} exists): resume its extraction first")
        else:
            raise FeatureStoreError(f"no shard store at {p}")
    if not found:
        raise FeatureStoreError(f"no shard stores found in {[str(i) for i in inputs]}")
    return found


def _common_meta(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in PER_SHARD_KEYS}


def validate_shards(stores: list[FeatureStore]) -> list[FeatureStore]:
    """The shards in index order, after every check of the module doc."""
    for s in stores:
        if not isinstance(s.meta.get("shard"), dict):
            raise FeatureStoreError(f"{s.path} is not a shard store (its meta.json has no 'shard' entry)")
    counts = sorted({s.meta["shard"]["count"] for s in stores})
    if len(counts) > 1:
        raise FeatureStoreError(f"shards of different shard counts {counts}: they come from different runs")
    count = counts[0]
    by_index: dict[int, FeatureStore] = {}
    for s in stores:
        i = s.meta["shard"]["index"]
        if i in by_index:
            raise FeatureStoreError(f"overlapping shards: index {i} given twice ({by_index[i].path} and {s.path})")
        by_index[i] = s
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        raise FeatureStoreError(f"missing shards: {len(missing)} of {count} absent, indices {missing[:20]}; "
                                "run them (same command with --shard-index) before merging")
    ordered = [by_index[i] for i in range(count)]
    reference = _common_meta(ordered[0].meta)
    for s in ordered[1:]:
        diff = sorted(k for k in set(reference) | set(_common_meta(s.meta))
                      if reference.get(k) != s.meta.get(k))
        if diff:
            raise FeatureStoreError(f"shard {s.path} comes from a different extraction than {ordered[0].path}: "
                                    f"meta.json differs in {diff}")
        if (s.dim, s.max_frames, s.dtype) != (ordered[0].dim, ordered[0].max_frames, ordered[0].dtype):
            raise FeatureStoreError(f"shard {s.path} has another shape or dtype than {ordered[0].path}")
    seen: set[str] = set()
    n_total = ordered[0].meta["shard"]["n_items"]
    for s in ordered:
        info = s.meta["shard"]
        expected = len(range(info["index"], n_total, count))
        if info["n_items"] != n_total or len(s) != expected:
            raise FeatureStoreError(f"shard {s.path} holds {len(s)} of {info['n_items']} items; shard {info['index']} "
                                    f"of {count} over {n_total} items must hold {expected}")
        overlap = seen.intersection(s.item_ids)
        if overlap:
            raise FeatureStoreError(f"overlapping shards: {len(overlap)} item ids of {s.path} are in an earlier shard, "
                                    f"e.g. {sorted(overlap)[:5]}")
        seen.update(s.item_ids)
    return ordered


class _RowCopier:
    """Copies shard rows into the joined store through the writer a single run would use."""

    def __init__(self, first: FeatureStore, out: Path, item_ids: list[str], metadata: dict, overwrite: bool):
        self.tokens = is_token_store(first)
        if self.tokens:
            grid = metadata.pop(TOKENS_KEY)["grid"]  # the token writer adds the entry itself
            self.writer = TokenStoreWriter(out, item_ids, first.max_frames, first.dim, grid, first.dtype, metadata,
                                           overwrite=overwrite)
        else:
            self.writer = FeatureStoreWriter(out, item_ids, first.max_frames, first.dim, first.dtype, metadata,
                                             overwrite=overwrite)
        self._positions: dict[Path, object] = {}

    def copy(self, shard: FeatureStore, local: list[int], index: int, count: int) -> None:
        feats, counts, stamps = shard.get_rows(local)  # float32, exact for every storage dtype
        rows = [index + r * count for r in local]
        if self.tokens:
            if shard.path not in self._positions:
                self._positions[shard.path] = open_token_store(shard.path, validate=False).positions
            self.writer.write(rows, feats, counts, stamps, self._positions[shard.path][local])
        else:
            self.writer.write(rows, feats, counts, stamps)


@contextmanager
def _source_date(created_iso: str):
    """``created`` of the joined store = the shards' (FeatureStoreWriter honours SOURCE_DATE_EPOCH)."""
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(int(_dt.datetime.fromisoformat(created_iso).timestamp()))
    try:
        yield
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old


def merge_stores(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Validate the shards found in ``inputs`` and write the joined store at ``out`` (module doc)."""
    from data_prep.extract import _atomic_json, merge_codec_meta

    shards = validate_shards([open_store(p, validate="fast") for p in find_shards(inputs)])
    first = shards[0]
    metadata = _common_meta(first.meta)
    count = len(shards)
    item_ids = [""] * first.meta["shard"]["n_items"]
    for i, s in enumerate(shards):  # shard i's local row j is global row i + j * count
        item_ids[i::count] = s.item_ids
    with _source_date(min(s.meta["created"] for s in shards)):
        writer = _RowCopier(first, Path(out), item_ids, metadata, overwrite)
    pending = set(writer.writer.pending_rows().tolist())
    for i, s in enumerate(shards):
        for start in range(0, len(s), _CHUNK_ROWS):
            local = [r for r in range(start, min(len(s), start + _CHUNK_ROWS)) if i + r * count in pending]
            if local:
                writer.copy(s, local, i, count)
    path = writer.writer.finalize()
    failures = sorted((f for s in shards for f in s.meta.get("failures", [])), key=lambda f: f["item_id"])
    codec = [s.meta["codec_saliency"] for s in shards if "codec_saliency" in s.meta]
    if failures or codec:  # as publish_side_records does for a single run
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        if failures:
            meta["failures"], meta["n_failures"] = failures, len(failures)
        if codec:
            meta["codec_saliency"] = merge_codec_meta(codec)
        _atomic_json(path / "meta.json", meta)
    return path
