"""``cva-rec tokenize``: content vectors -> RQ-KMeans tokenizer + slice/room codes + diagnostics.

Input is a feature store directory (every valid frame/segment vector is a slice) or a ``.npy``
array ``[n, d]`` (one vector per item: slice = room) or ``[n, S, d]`` (all S segments valid).
Writes into ``--out``::

    tokenizer.pt       the fitted RQKMeans (+ PCA), torch.save of plain tensors (weights_only loadable)
    codes.npz          SemanticCodes: slice codes [n, S, L] + mask, room codes [n, L], item ids
                       (feature-store row order; align to a dataset with SemanticCodes.align)
    diagnostics.json   code-quality diagnostics of the slice and the room codes
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from cva_rec.errors import ConfigError, FeatureStoreError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tokenize",
        help="fit RQ-KMeans semantic IDs (LUCID) on content vectors; write tokenizer, slice/room codes, diagnostics",
        description="Residual k-means over L levels x N codes (FLUID sec. 3.2) on every content segment of a "
        "feature store (or a .npy array), then slice codes per segment, room codes by per-level majority vote, "
        "and a diagnostics table (unique codes, collisions, utilisation, perplexity, quantisation error). "
        "Outputs: OUT/tokenizer.pt, OUT/codes.npz, OUT/diagnostics.json.",
    )
    p.add_argument("source", help="feature store directory, or a .npy file [n, d] / [n, S, d]")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--levels", type=int, default=4, help="code levels L (default: %(default)s)")
    p.add_argument("--codes", type=int, default=64, help="codes per level N (default: %(default)s)")
    p.add_argument("--iters", type=int, default=25, help="k-means iterations per level (epochs with --batch-size) (default: %(default)s)")
    p.add_argument("--pca", type=int, default=None, help="project to this many dimensions first (e.g. 128); default: none")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--balanced", action="store_true", help="balanced (Sinkhorn) assignment: near-equal clusters, fewer collisions")
    p.add_argument("--batch-size", type=int, default=None, help="mini-batch k-means with this batch size (large inputs)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: %(default)s)")
    p.add_argument("--backend", choices=["torch", "faiss"], default="torch", help="k-means implementation (default: %(default)s)")
    p.add_argument("--tie-break", choices=["nearest_mean", "smallest"], default="nearest_mean",
                   help="room-code vote tie-break (default: %(default)s; see docs/semantic_ids.md)")
    p.set_defaults(func=run)


class _StoreSegments:
    """A feature store's features as float32 item slices (converts float16/bfloat16 per chunk)."""

    def __init__(self, store):
        self.store = store
        self.shape = (len(store), store.max_frames, store.dim)

    def __getitem__(self, sl: slice) -> np.ndarray:
        return self.store.get_rows(np.arange(len(self.store))[sl])[0]


def load_source(source: str):
    """-> (segments [n, S, d] array-like float32, counts [n], item ids)."""
    path = Path(source)
    if path.is_dir():
        from cva_rec.features import open_store

        store = open_store(path, validate="fast")
        return _StoreSegments(store), np.asarray(store.num_frames, dtype=np.int64), list(store.item_ids)
    if path.suffix == ".npy" and path.is_file():
        from cva_rec.io import load_numpy

        arr = load_numpy(path, "content array", mmap_mode="r", error=FeatureStoreError)
        if arr.ndim == 2:
            arr = arr[:, None, :]
        if arr.ndim != 3:
            raise ConfigError(f"{path}: expected [n, d] or [n, S, d], got shape {list(arr.shape)}")
        return arr, np.full(arr.shape[0], arr.shape[1], dtype=np.int64), [str(i) for i in range(arr.shape[0])]
    raise ConfigError(f"{source}: not a feature store directory or a .npy file")


def _valid_vectors(segments, counts: np.ndarray, chunk: int = 8192) -> np.ndarray:
    parts = []
    for start in range(0, len(counts), chunk):
        block = np.asarray(segments[start:start + chunk], dtype=np.float32)
        mask = np.arange(block.shape[1])[None, :] < counts[start:start + chunk, None]
        parts.append(block[mask])
    return np.concatenate(parts) if parts else np.zeros((0, segments.shape[2]), np.float32)


def _mean_segments(segments, counts: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Each item's mean valid segment vector [n, d] (zeros for items without segments)."""
    parts = []
    for start in range(0, len(counts), chunk):
        block = np.asarray(segments[start:start + chunk], dtype=np.float32)
        c = counts[start:start + chunk]
        mask = (np.arange(block.shape[1])[None, :] < c[:, None]).astype(np.float32)[..., None]
        parts.append((block * mask).sum(1) / np.maximum(c, 1)[:, None])
    return np.concatenate(parts) if parts else np.zeros((0, segments.shape[2]), np.float32)


def run(args) -> int:
    from cva_rec.io import atomic_write_json
    from cva_rec.semantic_ids.codes import SemanticCodes
    from cva_rec.semantic_ids.diagnostics import code_diagnostics, format_table
    from cva_rec.semantic_ids.rq_kmeans import RQKMeans, path_errors

    out = Path(args.out)
    segments, counts, item_ids = load_source(args.source)
    vectors = _valid_vectors(segments, counts)
    log.info("fitting RQ-KMeans L=%d x N=%d on %d segment vectors of %d items (%d-d)",
             args.levels, args.codes, len(vectors), len(counts), vectors.shape[1])
    t0 = time.perf_counter()
    tok = RQKMeans(levels=args.levels, codes=args.codes, iters=args.iters, seed=args.seed, batch_size=args.batch_size,
                   balanced=args.balanced, device=args.device, pca=args.pca, backend=args.backend).fit(vectors)
    fit_s = time.perf_counter() - t0
    codes = SemanticCodes.from_features(tok, segments, counts, item_ids, tie_break=args.tie_break)
    slice_flat = codes.slice_codes[codes.slice_mask]
    slice_diag = code_diagnostics(slice_flat, tok.level_errors.tolist(), args.codes)
    means = _mean_segments(segments, counts)
    room_diag = code_diagnostics(codes.room_codes, path_errors(tok, means, codes.room_codes), args.codes)

    out.mkdir(parents=True, exist_ok=True)
    tok.save(out / "tokenizer.pt")
    codes.save(out / "codes.npz")
    report = {"source": str(args.source), "tokenizer": tok.config(), "fit_seconds": round(fit_s, 3),
              "tie_break": args.tie_break, "n_segments": int(len(vectors)), "slice": slice_diag, "room": room_diag}
    atomic_write_json(out / "diagnostics.json", report)
    print(format_table(slice_diag, f"slice codes ({len(slice_flat)} segments), fit {fit_s:.1f} s"))
    print()
    print(format_table(room_diag, f"room codes ({int((codes.room_codes >= 0).all(1).sum())} items with content)"))
    print(f"\nwrote {out / 'tokenizer.pt'}, {out / 'codes.npz'}, {out / 'diagnostics.json'}")
    return 0
