"""The CSR arrays on disk, memory-mapped, keyed by the ``.inter`` file's content and the filters.

``<root>/<dataset>-<key>/`` holds ``indptr.npy``, ``items.npy``, ``times.npy``, ``time_key.npy``, ``user_tokens.npy``,
``item_tokens.npy`` and ``meta.json``. The key is a sha256 over the file's bytes and everything
that changes the arrays (fields, separator, filters, duplicate policy, this format's version):
a changed file or filter is another key, so a stale cache is never read. A cache folder is
written under a temporary name and renamed into place in one step (``cva_rec.io.publish_dir``), so a
reader sees a complete folder or none; when two processes build the same key at once, the first
rename wins. ``manifest.json`` records each array file's size; a cache whose files no longer match
(truncated, replaced, from an older version) is rebuilt with a warning (sizes only: a cache of a
100M-row log is not re-hashed on every start). Builds of one key are serialised by a lock file
beside the folder (``.<folder>.lock``, ``fcntl.flock``): DDP processes starting on a cold cache
build it once; the others wait, then read it.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from cva_rec.errors import DataError
from cva_rec.io import check_free_space, file_sha256, load_numpy, make_temp_dir, manifest_problem, publish_dir, write_manifest
from cva_rec.data.streaming.sequences import CsrSequences

FORMAT_VERSION = 2  # 2: each user's rows in exact time order (1 sorted on the float32 key)
ARRAYS = ("indptr", "items", "times", "time_key", "user_tokens", "item_tokens")
FILES = tuple(f"{name}.npy" for name in ARRAYS)
log = logging.getLogger(__name__)


def cache_key(inter_path: Path, params: Mapping[str, Any]) -> str:
    spec = json.dumps({"format_version": FORMAT_VERSION, "file_sha256": file_sha256(inter_path), **params}, sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:24]


def _load(folder: Path) -> CsrSequences:
    arrays = {name: load_numpy(folder / f"{name}.npy", "sequence cache", mmap_mode="r", error=DataError) for name in ARRAYS}
    arrays["indptr"] = np.array(arrays["indptr"])  # O(users), read at every batch: in memory
    return CsrSequences(**arrays)


def cached_sequences(root: Path, name: str, inter_path: Path, params: Mapping[str, Any],
                     build: Callable[[], CsrSequences]) -> tuple[CsrSequences, bool]:
    """(memory-mapped sequences, whether they came from the cache); builds and stores them on a miss."""
    folder = Path(root) / f"{name}-{cache_key(inter_path, params)}"
    if folder.exists() and manifest_problem(folder, FILES) is None:
        return _load(folder), True
    with _build_lock(folder):  # one process builds a key (DDP ranks on a cold cache); the others wait, then read it
        if folder.exists():
            problem = manifest_problem(folder, FILES)
            if problem is None:
                return _load(folder), True
            log.warning("sequence cache %s is damaged (%s): rebuilding it", folder, problem)
        return _build(folder, inter_path, params, build), False


@contextlib.contextmanager
def _build_lock(folder: Path):
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build(folder: Path, inter_path: Path, params: Mapping[str, Any], build: Callable[[], CsrSequences]) -> CsrSequences:
    seqs = build()
    arrays = {key: np.ascontiguousarray(getattr(seqs, key)) for key in ARRAYS}
    check_free_space(folder.parent, sum(a.nbytes for a in arrays.values()), f"the sequence cache {folder}")
    tmp = make_temp_dir(folder)
    try:
        for key, arr in arrays.items():
            np.save(tmp / f"{key}.npy", arr, allow_pickle=False)
        meta = {"format_version": FORMAT_VERSION, "inter_file": str(inter_path), **params,
                "n_users": seqs.n_users - 1, "n_items": seqs.n_items - 1, "n_interactions": int(len(seqs.items))}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        write_manifest(tmp, FILES, checksum=False)
        try:
            publish_dir(tmp, folder, replace=folder.exists())  # fsyncs the files, then one rename
        except FileExistsError:  # another process published the same key first: theirs is identical
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _load(folder)
