"""On-disk feature store: one directory per extraction, memory-mapped, atomic and resumable.

Layout of a finished store directory::

    features.npy     [n_items, max_frames, dim]  float16 | float32 | bfloat16 (stored as uint16 bits)
    num_frames.npy   [n_items]                   int32, valid frames per item (the rest is zero padding)
    timestamps.npy   [n_items, max_frames]       float32, seconds (or segment positions); 0 on padding
    item_ids.json    original item tokens, in row order
    meta.json        encoder, sampler, n_frames, dim, dtype, source hashes, created, cva_rec version,
                     item_ids_sha256 and content_sha256 (the sha256 of every data file above), ...

Writing goes to ``<path>.partial/`` and ``finalize()`` renames it to ``<path>`` in one
``os.rename``, so a reader never sees a half-written store. While the extraction runs,
``<path>.partial/progress`` holds a bitmap of the rows already written; it is replaced
atomically only *after* the memory maps are flushed, so every row it marks is on disk. A
killed extraction re-opened with the same parameters skips those rows
(``writer.pending_rows()``); as long as the features of a row do not depend on which other
rows were computed in the same run, the finished bytes equal an uninterrupted run's.
``meta.json``'s ``created`` is fixed when the partial directory is first created and
honours ``SOURCE_DATE_EPOCH`` (the reproducible-builds convention), so two independent
runs can be byte-identical too.

Verified content: ``finalize()`` records the sha256 of every data file (``item_ids.json`` and
the ``.npy`` arrays) in ``meta.json``'s ``content_sha256``; :func:`open_store` compares them (and
the item ids with ``item_ids_sha256``) before anything reads a row, so a store with a value
changed or rows reordered after it was written is refused, naming the file. A file's digest is
remembered by size, mtime and inode (:mod:`cva_rec.fingerprints`), so a large store is read in
full once, not at every run. Stores written before these hashes existed are opened with what
they record (``item_ids_sha256``) and a warning; :func:`record_content_hashes` (``cva-rec
hash-store``) adds the hashes of their files as they are.
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from cva_rec.errors import FeatureStoreError
from cva_rec.fingerprints import file_digest
from cva_rec.io import (atomic_write_bytes, check_free_space, file_system_errors, load_numpy, make_temp_dir,
                        publish_dir)
from cva_rec.io import file_sha256  # also re-exported: source hashes in store metadata

FORMAT_NAME = "cva_rec.feature_store"
FORMAT_VERSION = 1
FEATURES_FILE = "features.npy"
NUM_FRAMES_FILE = "num_frames.npy"
TIMESTAMPS_FILE = "timestamps.npy"
ITEM_IDS_FILE = "item_ids.json"
META_FILE = "meta.json"
PROGRESS_FILE = "progress"
PARAMS_FILE = "params.json"  # only in <path>.partial: what a resume must match
REQUIRED_FILES = (FEATURES_FILE, NUM_FRAMES_FILE, TIMESTAMPS_FILE, ITEM_IDS_FILE, META_FILE)
PARTIAL_SUFFIX = ".partial"

# numpy has no bfloat16: its bits are stored as uint16 and meta.json says "bfloat16".
STORAGE_DTYPES: dict[str, np.dtype] = {
    "float16": np.dtype(np.float16),
    "float32": np.dtype(np.float32),
    "bfloat16": np.dtype(np.uint16),
}
# Keys the writer owns; user metadata may not override them (they describe the arrays).
STRUCTURAL_KEYS = ("format", "format_version", "n_items", "max_frames", "n_frames", "dim", "dtype", "item_ids_sha256",
                   "content_sha256")
_VALIDATE_CHUNK_BYTES = 64 << 20
#: stores opened without content hashes (warned about once per process)
_UNHASHED_WARNED: set[str] = set()
_REBUILD = "rebuild the store (run the extraction that wrote it again) or restore the file from a copy"
log = logging.getLogger(__name__)


def partial_path(path: str | os.PathLike) -> Path:
    """Where an unfinished store at ``path`` is written."""
    p = Path(path)
    return p.with_name(p.name + PARTIAL_SUFFIX)


def item_ids_sha256(item_ids: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(item_ids), ensure_ascii=False).encode("utf-8")).hexdigest()


def data_files(folder: Path) -> list[str]:
    """The files whose bytes are the store's content: item ids and every array (token positions too)."""
    return [ITEM_IDS_FILE, *sorted(f.name for f in folder.glob("*.npy"))]


def content_hashes(folder: Path) -> dict[str, str]:
    """sha256 of each data file of the store (or partial store) in ``folder`` (meta.json's ``content_sha256``)."""
    return {name: file_sha256(folder / name) for name in data_files(folder)}


def float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even, like torch's cast."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return ((bits + rounding) >> np.uint32(16)).astype(np.uint16)


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def _to_float32(raw: np.ndarray, dtype_name: str) -> np.ndarray:
    if dtype_name == "bfloat16":
        return bfloat16_bits_to_float32(raw)
    return np.asarray(raw, dtype=np.float32)


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_feature_store(path: str | os.PathLike) -> bool:
    """A finished store this library wrote: a folder whose meta.json names our format."""
    meta = _json_file(Path(path) / META_FILE) if Path(path).is_dir() else None
    return isinstance(meta, dict) and meta.get("format") == FORMAT_NAME


def _is_partial_store(path: Path) -> bool:
    params = _json_file(path / PARAMS_FILE) if path.is_dir() else None
    return isinstance(params, dict) and params.get("format") == FORMAT_NAME


def _refuse_foreign(path: Path, recognised: bool, kind: str) -> None:
    """``--overwrite`` only ever removes what this library wrote; anything else stays untouched."""
    if path.exists() and not recognised:
        what = "a file" if not path.is_dir() else f"a folder that is not {kind} (no cva_rec {kind} marker inside)"
        raise FeatureStoreError(f"{path} is {what}; refusing to write over or remove it: choose another output path")


def _preallocate(path: Path) -> None:
    """Reserve the file's blocks now: a full disk is an error here, not SIGBUS in a memory map later."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "rb+") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # file system cannot: the free-space check stands
                return
            raise


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _created_timestamp() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch else _dt.datetime.now(_dt.timezone.utc)
    return when.replace(microsecond=0).isoformat()


def _cva_rec_version() -> str:
    try:
        from cva_rec import __version__
    except ImportError:  # pragma: no cover - partial installs
        return "unknown"
    return __version__


def _check_unique(item_ids: Sequence[str], where: str) -> None:
    seen: set[str] = set()
    dups: list[str] = []
    for token in item_ids:
        if token in seen and token not in dups:
            dups.append(token)
        seen.add(token)
    if dups:
        raise FeatureStoreError(f"{where}: {len(dups)} duplicate item ids, e.g. {dups[:10]}")


class FeatureStoreWriter:
    """Writes a feature store row by row into ``<path>.partial/``; ``finalize()`` publishes it.

    Re-opening a ``<path>.partial`` left by a killed run with the same ``item_ids``,
    ``max_frames``, ``dim``, ``dtype`` and ``metadata`` resumes it; any difference is a
    :class:`FeatureStoreError` (delete the partial directory or pass ``overwrite=True``).
    ``overwrite=True`` also allows replacing an existing finished store at ``path``
    (the old one stays readable until ``finalize()`` swaps them).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        item_ids: Sequence[str],
        max_frames: int,
        dim: int,
        dtype: str = "float16",
        metadata: Mapping[str, Any] | None = None,
        *,
        overwrite: bool = False,
    ):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.item_ids = [str(t) for t in item_ids]
        if not self.item_ids:
            raise FeatureStoreError(f"{self.path}: cannot write a feature store with no items")
        _check_unique(self.item_ids, f"{self.path}: item_ids")
        if int(max_frames) < 1 or int(dim) < 1:
            raise FeatureStoreError(f"{self.path}: max_frames and dim must be >= 1, got {max_frames} and {dim}")
        if dtype not in STORAGE_DTYPES:
            raise FeatureStoreError(f"{self.path}: unsupported dtype {dtype!r}; use one of {sorted(STORAGE_DTYPES)}")
        metadata = dict(metadata or {})
        clash = sorted(set(metadata) & set(STRUCTURAL_KEYS))
        if clash:
            raise FeatureStoreError(f"{self.path}: metadata may not set {clash}; they are derived from the arrays")
        try:
            json.dumps(metadata)
        except TypeError as exc:
            raise FeatureStoreError(f"{self.path}: metadata must be JSON-serialisable ({exc})") from None
        self.max_frames = int(max_frames)
        self.dim = int(dim)
        self.dtype = dtype
        self.n_items = len(self.item_ids)
        self.metadata = metadata
        self.overwrite = overwrite
        self._finalized = False

        _refuse_foreign(self.path, is_feature_store(self.path), "feature store")
        _refuse_foreign(self.partial, _is_partial_store(self.partial), "unfinished feature store")
        if self.path.exists() and not overwrite:
            raise FeatureStoreError(f"a feature store already exists at {self.path}; delete it or pass overwrite=True")
        params = self._params()
        if self.partial.exists():
            if overwrite:
                shutil.rmtree(self.partial)
            else:
                self._check_resumable(params)
        if self.partial.exists():
            self._open_existing()
        else:
            self._create(params)

    # -- set-up ----------------------------------------------------------------------------
    def _params(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "n_items": self.n_items,
            "max_frames": self.max_frames,
            "dim": self.dim,
            "dtype": self.dtype,
            "item_ids_sha256": item_ids_sha256(self.item_ids),
            "metadata": self.metadata,
        }

    def _check_resumable(self, params: dict) -> None:
        hint = f"delete {self.partial} or pass overwrite=True to start again"
        try:
            saved = json.loads((self.partial / PARAMS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FeatureStoreError(f"cannot resume {self.partial}: unreadable {PARAMS_FILE} ({exc}); {hint}") from None
        saved_params = {k: saved.get(k) for k in params}
        diff = [k for k in params if saved_params[k] != params[k]]
        if diff:
            detail = ", ".join(
                f"{k}: was {saved_params[k]!r}, now {params[k]!r}" if k not in ("item_ids_sha256", "metadata") else f"{k} differs"
                for k in diff
            )
            raise FeatureStoreError(f"cannot resume {self.partial}: parameters changed ({detail}); {hint}")
        self._created = saved.get("created") or _created_timestamp()

    def _create(self, params: dict) -> None:
        storage = STORAGE_DTYPES[self.dtype]
        n, f, d = self.n_items, self.max_frames, self.dim
        arrays = ((FEATURES_FILE, storage, (n, f, d)), (NUM_FRAMES_FILE, np.dtype(np.int32), (n,)),
                  (TIMESTAMPS_FILE, np.dtype(np.float32), (n, f)))
        needed = sum(math.prod(shape) * dtype.itemsize for _, dtype, shape in arrays) + 2 * len(_json_bytes(self.item_ids))
        check_free_space(self.partial.parent, needed, f"the feature store {self.path}")
        tmp = make_temp_dir(self.partial)
        try:
            with file_system_errors(self.partial):
                # open_memmap writes a proper .npy header; the data area reads as zeros, its blocks reserved
                for name, dtype, shape in arrays:
                    mm = np.lib.format.open_memmap(tmp / name, mode="w+", dtype=dtype, shape=shape)
                    mm.flush()
                    del mm
                    _preallocate(tmp / name)
                (tmp / ITEM_IDS_FILE).write_bytes(_json_bytes(self.item_ids))
                self._created = _created_timestamp()
                (tmp / PARAMS_FILE).write_bytes(_json_bytes({**params, "created": self._created}))
                (tmp / PROGRESS_FILE).write_bytes(np.packbits(np.zeros(n, dtype=bool)).tobytes())
                # The partial dir appears complete or not at all, so a crash here never leaves a
                # partial that a resume would misread.
                publish_dir(tmp, self.partial)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self._open_existing()

    def _open_existing(self) -> None:
        n, f = self.n_items, self.max_frames
        try:
            self._features = np.lib.format.open_memmap(self.partial / FEATURES_FILE, mode="r+")
            self._num_frames = np.lib.format.open_memmap(self.partial / NUM_FRAMES_FILE, mode="r+")
            self._timestamps = np.lib.format.open_memmap(self.partial / TIMESTAMPS_FILE, mode="r+")
            raw = (self.partial / PROGRESS_FILE).read_bytes()
        except (OSError, ValueError) as exc:
            raise FeatureStoreError(f"cannot resume {self.partial}: {exc}; delete it or pass overwrite=True") from None
        expected = [
            (self._features, (n, f, self.dim), STORAGE_DTYPES[self.dtype]),
            (self._num_frames, (n,), np.dtype(np.int32)),
            (self._timestamps, (n, f), np.dtype(np.float32)),
        ]
        for arr, shape, dtype in expected:
            if arr.shape != shape or arr.dtype != dtype:
                raise FeatureStoreError(
                    f"cannot resume {self.partial}: {Path(arr.filename).name} is {arr.dtype}{list(arr.shape)}, "
                    f"expected {dtype}{list(shape)}; delete it or pass overwrite=True"
                )
        if len(raw) != math.ceil(n / 8):
            raise FeatureStoreError(f"cannot resume {self.partial}: corrupt {PROGRESS_FILE} file; delete it or pass overwrite=True")
        self._done = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n).astype(bool)

    # -- writing ---------------------------------------------------------------------------
    @property
    def n_done(self) -> int:
        return int(self._done.sum())

    def pending_rows(self) -> np.ndarray:
        """Row indices not written yet (all rows for a fresh store), ascending."""
        return np.flatnonzero(~self._done)

    def row_of(self, item_id: str) -> int:
        """Row index of an item token (the order given to the constructor)."""
        if not hasattr(self, "_row_index"):
            self._row_index = {t: i for i, t in enumerate(self.item_ids)}
        try:
            return self._row_index[item_id]
        except KeyError:
            raise FeatureStoreError(f"item {item_id!r} is not one of this writer's items ({self.path})") from None

    def write(
        self,
        rows: Iterable[int] | np.ndarray,
        features: np.ndarray,
        num_frames: Iterable[int] | np.ndarray,
        timestamps: np.ndarray | None = None,
    ) -> None:
        """Write a batch of rows and record them as done.

        rows [b] (distinct), features [b, F', dim] with F' <= max_frames (any float dtype),
        num_frames [b] with 0 <= num_frames <= F', timestamps [b, F'] (default: frame
        positions 0, 1, ...). Frames at and after ``num_frames`` are stored as zeros, so the
        bytes depend only on the valid frames.
        """
        if self._finalized:
            raise FeatureStoreError(f"{self.path}: writer already finalized")
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        feats = np.asarray(features)
        counts = np.asarray(num_frames, dtype=np.int64).reshape(-1)
        b = rows.shape[0]
        if feats.ndim != 3 or feats.shape[0] != b or feats.shape[2] != self.dim:
            raise FeatureStoreError(f"{self.path}: features must be [{b}, frames, {self.dim}], got {list(feats.shape)}")
        f_in = feats.shape[1]
        if f_in > self.max_frames:
            raise FeatureStoreError(f"{self.path}: {f_in} frames given, the store holds at most {self.max_frames}")
        if counts.shape != (b,):
            raise FeatureStoreError(f"{self.path}: num_frames must be [{b}], got {list(counts.shape)}")
        if b == 0:
            return
        if rows.min() < 0 or rows.max() >= self.n_items:
            raise FeatureStoreError(f"{self.path}: row indices must be in [0, {self.n_items}), got {rows.min()}..{rows.max()}")
        if np.unique(rows).shape[0] != b:
            raise FeatureStoreError(f"{self.path}: duplicate row indices in one write")
        if counts.min() < 0 or counts.max() > f_in:
            raise FeatureStoreError(f"{self.path}: num_frames must be in [0, {f_in}] (frames given), got {counts.min()}..{counts.max()}")
        if timestamps is None:
            ts = np.broadcast_to(np.arange(f_in, dtype=np.float32), (b, f_in))
        else:
            ts = np.asarray(timestamps, dtype=np.float32)
            if ts.shape != (b, f_in):
                raise FeatureStoreError(f"{self.path}: timestamps must be [{b}, {f_in}], got {list(ts.shape)}")
        valid = np.arange(f_in)[None, :] < counts[:, None]
        feats32 = np.where(valid[:, :, None], feats.astype(np.float32, copy=False), np.float32(0))
        if not np.isfinite(feats32).all():
            bad = rows[~np.isfinite(feats32).reshape(b, -1).all(axis=1)]
            raise FeatureStoreError(f"{self.path}: features contain NaN/Inf for rows {bad[:10].tolist()}")
        with np.errstate(over="ignore"):  # float16 overflow is reported just below, as an error
            stored = float32_to_bfloat16_bits(feats32) if self.dtype == "bfloat16" else feats32.astype(STORAGE_DTYPES[self.dtype])
        if self.dtype == "float16" and not np.isfinite(stored).all():
            raise FeatureStoreError(f"{self.path}: features overflow float16 (|x| > 65504); use dtype='float32'")

        out = np.zeros((b, self.max_frames, self.dim), dtype=STORAGE_DTYPES[self.dtype])
        out[:, :f_in] = stored
        out_ts = np.zeros((b, self.max_frames), dtype=np.float32)
        out_ts[:, :f_in] = np.where(valid, ts, np.float32(0))
        order = np.argsort(rows)  # ascending rows: sequential page writes in the memmap
        self._features[rows[order]] = out[order]
        self._timestamps[rows[order]] = out_ts[order]
        self._num_frames[rows[order]] = counts[order].astype(np.int32)
        # Data first, then the progress bitmap: a row marked done is always on disk.
        self._features.flush()
        self._timestamps.flush()
        self._num_frames.flush()
        self._done[rows] = True
        atomic_write_bytes(self.partial / PROGRESS_FILE, np.packbits(self._done).tobytes())

    def finalize(self) -> Path:
        """Check every row was written, write meta.json and publish ``<path>`` atomically."""
        if self._finalized:
            return self.path
        missing = self.pending_rows()
        if missing.size:
            raise FeatureStoreError(
                f"{self.path}: {missing.size} of {self.n_items} rows not written yet "
                f"(e.g. {[self.item_ids[i] for i in missing[:10]]}); cannot finalize"
            )
        self.close()  # flushed: the content hashes read the final bytes
        meta = {
            "encoder": None,
            "sampler": None,
            "source_hashes": {},
            **self.metadata,
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "n_items": self.n_items,
            "max_frames": self.max_frames,
            "n_frames": self.max_frames,
            "dim": self.dim,
            "dtype": self.dtype,
            "item_ids_sha256": item_ids_sha256(self.item_ids),
            "content_sha256": content_hashes(self.partial),
            "created": self._created,
            "cva_rec_version": self.metadata.get("cva_rec_version", _cva_rec_version()),
        }
        atomic_write_bytes(self.partial / META_FILE, _json_bytes(meta))
        for name in (PROGRESS_FILE, PARAMS_FILE):
            (self.partial / name).unlink()
        for stray in self.partial.glob("*.tmp"):  # left by a kill during an atomic write
            stray.unlink()
        # overwrite=True: the old store (checked to be one at construction) stays readable until
        # the swap, then is deleted
        publish_dir(self.partial, self.path, replace=self.overwrite)
        self._finalized = True
        return self.path

    def close(self) -> None:
        """Release the memory maps (the partial directory stays, ready to resume)."""
        for name in ("_features", "_num_frames", "_timestamps"):
            arr = getattr(self, name, None)
            if arr is not None:
                arr.flush()
                setattr(self, name, None)

    def __enter__(self) -> "FeatureStoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FeatureStore:
    """A finished feature store opened read-only; arrays are memory maps (nothing loaded up front)."""

    def __init__(self, path: Path, item_ids: list[str], features: np.ndarray, num_frames: np.ndarray,
                 timestamps: np.ndarray, meta: dict):
        self.path = path
        self.item_ids = item_ids
        self.features = features
        self.num_frames = num_frames
        self.timestamps = timestamps
        self.meta = meta
        self._row_of = {t: i for i, t in enumerate(item_ids)}

    @property
    def dtype(self) -> str:
        """Storage dtype name: float16, float32 or bfloat16 (then ``features`` holds uint16 bits)."""
        return self.meta["dtype"]

    @property
    def dim(self) -> int:
        return int(self.features.shape[2])

    @property
    def max_frames(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row_of

    def row_of(self, item_id: str) -> int:
        try:
            return self._row_of[item_id]
        except KeyError:
            raise FeatureStoreError(f"item {item_id!r} is not in the feature store {self.path}") from None

    def rows_of(self, item_ids: Iterable[str]) -> dict[str, int]:
        """token -> row for the given tokens that are in the store (missing ones left out)."""
        return {t: self._row_of[t] for t in item_ids if t in self._row_of}

    def get(self, item_id: str) -> tuple[np.ndarray, np.ndarray]:
        """One item's valid frames: (features [n_frames, dim] float32, timestamps [n_frames] float32)."""
        row = self.row_of(item_id)
        n = int(self.num_frames[row])
        return _to_float32(self.features[row, :n], self.dtype), np.array(self.timestamps[row, :n], dtype=np.float32)

    def get_rows(self, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows (any order) -> (features [b, max_frames, dim] float32, num_frames [b] int32, timestamps [b, max_frames])."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise FeatureStoreError(f"{self.path}: row indices must be in [0, {len(self)})")
        return (
            _to_float32(self.features[rows], self.dtype),
            np.array(self.num_frames[rows], dtype=np.int32),
            np.array(self.timestamps[rows], dtype=np.float32),
        )

    def raw_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the storage dtype (no float32 copy), for aligners that convert themselves."""
        return np.asarray(self.features[np.asarray(rows, dtype=np.int64)])

    def __repr__(self) -> str:
        return (f"FeatureStore({str(self.path)!r}, items={len(self)}, max_frames={self.max_frames}, "
                f"dim={self.dim}, dtype={self.dtype}, encoder={self.meta.get('encoder')!r})")


def open_store(path: str | os.PathLike, *, validate: bool | str = True, progress: bool | None = None) -> FeatureStore:
    """Open a finished store read-only with memory maps.

    ``validate``: True checks files, shapes, dtypes, frame counts, duplicate ids and scans
    every feature for NaN/Inf (in chunks, with a progress bar on big stores); "fast" skips
    the NaN/Inf scan; False checks only what is needed to open. Problems raise
    :class:`FeatureStoreError` naming the file.
    """
    if validate not in (True, False, "fast"):
        raise FeatureStoreError(f"validate must be True, False or 'fast', got {validate!r}")
    p = Path(path)
    if not p.exists():
        part = partial_path(p)
        if part.exists():
            raise FeatureStoreError(
                f"feature store {p} is unfinished (only {part} exists): resume the extraction to finish it, "
                f"or delete {part}"
            )
        raise FeatureStoreError(f"no feature store at {p} (path does not exist)")
    if not p.is_dir():
        raise FeatureStoreError(f"{p} is not a feature store directory (it is a file)")
    missing = [name for name in REQUIRED_FILES if not (p / name).is_file()]
    if missing:
        raise FeatureStoreError(f"{p} is not a complete feature store: missing {', '.join(missing)}")

    try:
        meta = json.loads((p / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FeatureStoreError(f"{p / META_FILE}: unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise FeatureStoreError(f"{p / META_FILE}: must be a JSON object, got {type(meta).__name__}")
    for key in ("n_items", "max_frames", "dim", "dtype"):
        if key not in meta:
            raise FeatureStoreError(f"{p / META_FILE}: missing key {key!r}")
    dtype_name = meta["dtype"]
    if not isinstance(dtype_name, str) or dtype_name not in STORAGE_DTYPES:
        raise FeatureStoreError(f"{p / META_FILE}: unsupported dtype {dtype_name!r}")
    for key in ("n_items", "max_frames", "dim"):  # a hand-edited or damaged meta.json: never a traceback
        if isinstance(meta[key], bool) or not isinstance(meta[key], int) or meta[key] < 0:
            raise FeatureStoreError(f"{p / META_FILE}: {key} must be an integer >= 0, got {meta[key]!r}")
    n, f, d = int(meta["n_items"]), int(meta["max_frames"]), int(meta["dim"])

    try:
        item_ids = json.loads((p / ITEM_IDS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FeatureStoreError(f"{p / ITEM_IDS_FILE}: unreadable ({exc})") from None
    if not isinstance(item_ids, list) or not all(isinstance(t, str) for t in item_ids):
        raise FeatureStoreError(f"{p / ITEM_IDS_FILE}: must be a JSON list of strings")
    if len(item_ids) != n:
        raise FeatureStoreError(f"{p / ITEM_IDS_FILE}: {len(item_ids)} ids but meta.json says n_items={n}")
    if validate:
        _check_unique(item_ids, str(p / ITEM_IDS_FILE))

    arrays = {}
    for name, shape, dtype in (
        (FEATURES_FILE, (n, f, d), STORAGE_DTYPES[dtype_name]),
        (NUM_FRAMES_FILE, (n,), np.dtype(np.int32)),
        (TIMESTAMPS_FILE, (n, f), np.dtype(np.float32)),
    ):
        arr = load_numpy(p / name, "array", mmap_mode="r", error=FeatureStoreError)  # never pickle
        if arr.shape != shape:
            raise FeatureStoreError(f"{p / name}: shape {list(arr.shape)} does not match meta.json (expected {list(shape)})")
        if arr.dtype != dtype:
            raise FeatureStoreError(f"{p / name}: dtype {arr.dtype} does not match meta.json (expected {dtype} for {dtype_name})")
        arrays[name] = arr

    counts = arrays[NUM_FRAMES_FILE]
    if validate and n and (counts.min() < 0 or counts.max() > f):
        bad = np.flatnonzero((counts < 0) | (counts > f))
        raise FeatureStoreError(
            f"{p / NUM_FRAMES_FILE}: frame counts must be in [0, {f}]; rows {bad[:10].tolist()} hold {counts[bad[:10]].tolist()}"
        )
    if validate is True:
        _scan_non_finite(p, arrays[FEATURES_FILE], dtype_name, progress)
        if not np.isfinite(arrays[TIMESTAMPS_FILE]).all():
            raise FeatureStoreError(f"{p / TIMESTAMPS_FILE}: contains NaN/Inf")
    if validate:  # after the checks that say more precisely what is wrong (NaN rows, frame counts)
        verify_content(p, meta, item_ids)
    return FeatureStore(p, item_ids, arrays[FEATURES_FILE], counts, arrays[TIMESTAMPS_FILE], meta)


def verify_content(p: Path, meta: Mapping[str, Any], item_ids: Sequence[str]) -> None:
    """The store's files hold what was written: item ids and data files match the hashes in meta.json."""
    _verify_item_ids(p, meta, item_ids)
    recorded = meta.get("content_sha256")
    if not isinstance(recorded, dict) or not recorded:
        if str(p) not in _UNHASHED_WARNED:
            _UNHASHED_WARNED.add(str(p))
            log.warning("%s was written without content hashes: its data files cannot be verified; "
                        "`cva-rec hash-store %s` records them for the files as they are now", p, p)
        return
    for name in sorted(recorded):
        f = p / name
        if not f.is_file():
            raise FeatureStoreError(f"{f}: missing, but {META_FILE} records its content hash; {_REBUILD}")
        if file_digest(f) != recorded[name]:
            raise FeatureStoreError(f"{f}: contents differ from the sha256 recorded in {META_FILE} when the store was "
                                    f"written (changed or damaged since); {_REBUILD}")
    unrecorded = sorted(set(data_files(p)) - set(recorded))
    if unrecorded:
        raise FeatureStoreError(f"{p / unrecorded[0]}: a data file the store was not written with "
                                f"(not in content_sha256 of {META_FILE}); remove it or {_REBUILD}")


def _verify_item_ids(p: Path, meta: Mapping[str, Any], item_ids: Sequence[str]) -> None:
    recorded = meta.get("item_ids_sha256")
    if recorded is not None and recorded != item_ids_sha256(item_ids):
        raise FeatureStoreError(f"{p / ITEM_IDS_FILE}: the item ids are not those the store was written with "
                                f"(item_ids_sha256 in {META_FILE}; reordered or edited: rows would be read as other "
                                f"items' features); {_REBUILD}")


def record_content_hashes(path: str | os.PathLike) -> dict[str, str]:
    """Add ``item_ids_sha256`` and ``content_sha256`` to the ``meta.json`` of a store written without them,
    vouching for its files as they are now (atomic replace of meta.json). Returns the content hashes."""
    store = open_store(path, validate=False)
    meta = dict(store.meta)
    if meta.get("content_sha256"):
        verify_content(store.path, meta, store.item_ids)
        return meta["content_sha256"]
    _verify_item_ids(store.path, meta, store.item_ids)  # what an older store records must still hold
    meta["item_ids_sha256"] = item_ids_sha256(store.item_ids)
    meta["content_sha256"] = content_hashes(store.path)
    atomic_write_bytes(store.path / META_FILE, _json_bytes(meta))
    _UNHASHED_WARNED.discard(str(store.path))
    return meta["content_sha256"]


def _scan_non_finite(p: Path, features: np.ndarray, dtype_name: str, progress: bool | None) -> None:
    n = features.shape[0]
    row_bytes = max(1, features[0:1].nbytes) if n else 1
    chunk = max(1, _VALIDATE_CHUNK_BYTES // row_bytes)
    starts = range(0, n, chunk)
    if progress is None:
        progress = len(starts) > 4  # only big stores (> ~256 MB) get a bar
    if progress:
        from cva_rec.plain_progress import progress_iter  # a bar on a terminal, plain lines in a log

        starts = progress_iter(starts, desc=f"validating {p.name}", unit="chunk")
    for start in starts:
        block = features[start:start + chunk]
        if dtype_name == "bfloat16":  # exponent bits all ones = Inf/NaN
            bad_mask = (block & np.uint16(0x7F80)) == np.uint16(0x7F80)
        else:
            bad_mask = ~np.isfinite(block)
        if bad_mask.any():
            rows = start + np.flatnonzero(bad_mask.reshape(block.shape[0], -1).any(axis=1))
            raise FeatureStoreError(f"{p / FEATURES_FILE}: NaN/Inf in rows {rows[:10].tolist()}")
