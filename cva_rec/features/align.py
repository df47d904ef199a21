"""Align a feature store (rows in extraction order, original tokens) to RecBole's internal item ids.

RecBole numbers items 1..n-1 in its own order and keeps 0 for padding
(``dataset.field2id_token[iid_field][0] == "[PAD]"``). Encoders index content by that
internal id, so the store's rows are re-ordered once, here, into an :class:`ItemContent`.

Items of the dataset that have no row in the store are handled by ``missing``:

* ``"error"`` (default): :class:`FeatureStoreError` with how many items lack features and
  the first few tokens.
* ``"zeros"``: all-zero features with 0 valid frames. Every frame is masked, so a content
  encoder's masked mean over frames is 0 and its output is what its layers make of a zero
  input: a learned bias-only vector, the same for every such item.
* ``"mean"``: one frame equal to the catalogue mean feature (mean over every valid frame of
  the dataset's items that do have features), timestamp 0.

There is deliberately no ``"drop"``: removing items here would renumber RecBole's internal
ids, which RecBole has already used to build its interaction tensors. Filter the dataset
instead (write the ``.inter``/``.item`` atomic files without those items), then align.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from cva_rec.errors import ConfigError, FeatureStoreError
from cva_rec.features.content import ItemContent
from cva_rec.features.store import FeatureStore

log = logging.getLogger(__name__)

MISSING_POLICIES = ("error", "zeros", "mean")
PAD_TOKEN = "[PAD]"
_ALIGN_CHUNK_ROWS = 4096  # bounds the float32 intermediate while copying rows


def align_to_items(
    store: FeatureStore,
    item_tokens: Sequence[str],
    *,
    missing: str = "error",
    dtype: torch.dtype = torch.float16,
    max_frames: int | None = None,
) -> ItemContent:
    """Build :class:`ItemContent` whose row ``i`` holds the features of ``item_tokens[i]``.

    item_tokens: original token of every RecBole internal item id; index 0 must be
        ``"[PAD]"`` and becomes the zero row with 0 frames.
    missing: policy for tokens with no row in the store: "error", "zeros" or "mean"
        (see the module docstring; "drop" is not offered because it would renumber ids).
    dtype: dtype of the feature buffer (float16 halves memory; encoders upcast on gather).
    max_frames: keep only the first k frames of every item (frame-count ablations).
    """
    if missing not in MISSING_POLICIES:
        extra = (
            " ('drop' would renumber RecBole's internal item ids; filter the dataset's items instead)"
            if missing == "drop" else ""
        )
        raise ConfigError(f"unknown missing-features policy {missing!r}; use one of {list(MISSING_POLICIES)}{extra}")
    tokens = [str(t) for t in item_tokens]
    if not tokens or tokens[0] != PAD_TOKEN:
        first = tokens[0] if tokens else None
        raise FeatureStoreError(
            f"item_tokens[0] must be {PAD_TOKEN!r} (RecBole's padding item), got {first!r}; "
            "pass dataset.field2id_token[dataset.iid_field]"
        )
    k = store.max_frames if max_frames is None else int(max_frames)
    if not 1 <= k <= store.max_frames:
        raise ConfigError(f"max_frames must be in [1, {store.max_frames}] for store {store.path}, got {max_frames}")

    n_items = len(tokens)
    found_ids, found_rows, missing_tokens = [], [], []
    for item_id, token in enumerate(tokens[1:], start=1):
        row = store._row_of.get(token)
        if row is None:
            missing_tokens.append(token)
        else:
            found_ids.append(item_id)
            found_rows.append(row)
    if missing_tokens and missing == "error":
        raise FeatureStoreError(
            f"{len(missing_tokens)} of {n_items - 1} dataset items have no features in {store.path}, "
            f"e.g. {missing_tokens[:10]}; re-extract them or choose missing='zeros' or 'mean'"
        )

    features = torch.zeros((n_items, k, store.dim), dtype=dtype)
    num_frames = torch.zeros(n_items, dtype=torch.long)
    timestamps = torch.zeros((n_items, k), dtype=torch.float32)
    ids = np.asarray(found_ids, dtype=np.int64)
    rows = np.asarray(found_rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")  # ascending rows: sequential reads of the memmap
    ids, rows = ids[order], rows[order]
    frame_sum = np.zeros(store.dim, dtype=np.float64)
    frame_count = 0
    for start in range(0, len(rows), _ALIGN_CHUNK_ROWS):
        r = rows[start:start + _ALIGN_CHUNK_ROWS]
        i = torch.from_numpy(ids[start:start + _ALIGN_CHUNK_ROWS])
        feats, counts, ts = store.get_rows(r)
        feats, ts = feats[:, :k], ts[:, :k]
        counts = np.minimum(counts, k)
        if missing == "mean":
            valid = np.arange(k)[None, :] < counts[:, None]
            frame_sum += (feats * valid[:, :, None]).sum(axis=(0, 1), dtype=np.float64)
            frame_count += int(counts.sum())
        features[i] = torch.from_numpy(feats).to(dtype)
        num_frames[i] = torch.from_numpy(counts.astype(np.int64))
        timestamps[i] = torch.from_numpy(ts)

    if missing_tokens:
        miss_ids = torch.tensor([j for j, t in enumerate(tokens) if j > 0 and t not in store._row_of])
        if missing == "mean":
            if frame_count == 0:
                raise FeatureStoreError(f"missing='mean' needs at least one item with frames in {store.path}")
            mean = torch.from_numpy((frame_sum / frame_count).astype(np.float32))
            features[miss_ids, 0] = mean.to(dtype)
            num_frames[miss_ids] = 1
        log.warning(
            "%d of %d items have no features in %s; policy %r (e.g. %s)",
            len(missing_tokens), n_items - 1, store.path, missing, missing_tokens[:5],
        )
    return ItemContent(features, num_frames, timestamps)


def align_to_dataset(store: FeatureStore, dataset, **kwargs) -> ItemContent:
    """:func:`align_to_items` with the tokens of a RecBole ``Dataset``'s item field."""
    tokens = dataset.field2id_token[dataset.iid_field]
    return align_to_items(store, list(tokens), **kwargs)
