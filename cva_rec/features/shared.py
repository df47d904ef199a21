"""Aligned item content as memory-mapped files, so DDP ranks on one machine share one copy.

:func:`~cva_rec.features.align.align_to_items` re-orders a store's rows into RecBole's item
order as ordinary tensors: every process holds its own copy. With N processes on a node that
is N copies of ``[n_items, max_frames, dim]``. :func:`shared_aligned_content` writes the aligned
arrays once to a cache folder (``.npy``, atomically: temporary folder + one rename) and returns an
:class:`ItemContent` whose buffers are copy-on-write memory maps of those files: the pages live
in the OS page cache once and are shared by every process that maps them. Nothing writes to
the buffers (DDP is told not to broadcast them: ``SeqRecModule.setup``), so they stay shared.
On GPU the buffers are copied to each device as before; the host keeps only the page cache.

The cache key covers the store's ``meta.json`` (which changes with every extraction), the
features file's size and mtime, the dataset's item tokens and the alignment options, so a
re-extracted store or another dataset never reads a stale cache. Concurrent first calls
(``torchrun``/SLURM start all ranks together) each build and rename; the first rename wins and
the others discard their copy.

The cache is a file anyone can damage, so it is checked before use: ``manifest.json`` (written
with the arrays) records each file's size and sha256; a cache that does not match (truncated,
overwritten, from an older version) is rebuilt, with a warning. A cache folder that cannot be
written (read-only output folder) is not an error: the aligned content is then kept in memory.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cva_rec.features.align import align_to_items
from cva_rec.features.content import ItemContent
from cva_rec.errors import FileSystemError
from cva_rec.features.store import FeatureStore
from cva_rec.io import file_system_errors, load_numpy, make_temp_dir, manifest_problem, publish_dir, write_manifest

log = logging.getLogger(__name__)

_FILES = ("features.npy", "num_frames.npy", "timestamps.npy")
# numpy has no bfloat16: such features are stored as their int16 bit patterns
_STORE_AS = {torch.float16: torch.float16, torch.float32: torch.float32, torch.bfloat16: torch.int16}


def cache_key(store: FeatureStore, item_tokens: Sequence[str], missing: str, dtype: torch.dtype, max_frames: int | None) -> str:
    """Hex digest identifying one (store extraction, dataset items, alignment options)."""
    h = hashlib.sha256()
    h.update((Path(store.path) / "meta.json").read_bytes())
    st = os.stat(Path(store.path) / "features.npy")
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(json.dumps([str(t) for t in item_tokens]).encode())
    h.update(json.dumps([missing, str(dtype), max_frames]).encode())
    return h.hexdigest()[:24]


def _write(folder: Path, content: ItemContent, dtype: torch.dtype) -> None:
    arrays = (content.features.view(_STORE_AS[dtype]).numpy(), content.num_frames.numpy(), content.timestamps.numpy())
    for name, arr in zip(_FILES, arrays):
        np.save(folder / name, arr, allow_pickle=False)
    write_manifest(folder, _FILES)


def _mapped(folder: Path, dtype: torch.dtype) -> ItemContent:
    # mode "c" (copy-on-write): writable for torch.from_numpy, yet pages are the shared page cache
    arrays = [load_numpy(folder / name, "content cache", mmap_mode="c") for name in _FILES]
    features = torch.from_numpy(arrays[0])
    if dtype is torch.bfloat16:
        features = features.view(torch.bfloat16)
    return ItemContent(features, torch.from_numpy(arrays[1]), torch.from_numpy(arrays[2]))


def shared_aligned_content(
    store: FeatureStore,
    item_tokens: Sequence[str],
    cache_dir: str | os.PathLike,
    *,
    missing: str = "error",
    dtype: torch.dtype = torch.float16,
    max_frames: int | None = None,
) -> ItemContent:
    """:func:`align_to_items`, but memory-mapped from ``cache_dir/<key>/`` (built on first use).

    Same arguments and same values as :func:`align_to_items` (tested bit for bit); every
    process that calls it with the same store, items and options maps the same files.
    A token store's positions (small, int16) are attached in memory (:mod:`cva_rec.features.tokens`).
    """
    from cva_rec.features.tokens import attach_token_positions

    content = _cached_alignment(store, item_tokens, cache_dir, missing=missing, dtype=dtype, max_frames=max_frames)
    return attach_token_positions(content, store, item_tokens)


def _cached_alignment(store: FeatureStore, item_tokens: Sequence[str], cache_dir: str | os.PathLike, *,
                      missing: str, dtype: torch.dtype, max_frames: int | None) -> ItemContent:
    if dtype not in _STORE_AS:
        raise ValueError(f"unsupported content dtype {dtype}")
    cache_dir = Path(cache_dir)
    folder = cache_dir / cache_key(store, item_tokens, missing, dtype, max_frames)
    problem = manifest_problem(folder, _FILES) if folder.exists() else "absent"
    if problem is None:
        return _mapped(folder, dtype)
    if folder.exists():
        log.warning("content cache %s is damaged (%s): rebuilding it", folder, problem)
    content = align_to_items(store, item_tokens, missing=missing, dtype=dtype, max_frames=max_frames)
    try:
        tmp = make_temp_dir(folder)
    except FileSystemError as exc:  # read-only output folder: a cache is an optimisation, not a need
        log.warning("content cache not written (%s); the aligned content stays in this process's memory", exc)
        return content
    try:
        with file_system_errors(folder):
            _write(tmp, content, dtype)
        publish_dir(tmp, folder, replace=folder.exists())  # atomic; a damaged cache is swapped out
    except FileExistsError:
        pass  # another process published the same cache first
    except FileSystemError as exc:  # disk full while caching: same as above
        log.warning("content cache not written (%s); the aligned content stays in this process's memory", exc)
        return content
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("aligned content of %s cached in %s", store.path, folder)
    return _mapped(folder, dtype)
