"""``cva-rec tokenize``: content vectors -> RQ-KMeans tokenizer + slice/room codes + diagnostics.

Input is a feature store directory (every valid frame/segment vector is a slice) or a ``.npy``
array ``[n, d]`` (one vector per item: slice = room) or ``[n, S, d]`` (all S segments valid).
Writes into ``--out``::

    tokenizer.pt       the fitted RQKMeans (+ PCA), torch.save of plain tensors (weights_only loadable)
    codes.npz          SemanticCodes: slice codes [n, S, L] + mask, room codes [n, L], item ids
                       (feature-store row order; align to a dataset with SemanticCodes.align)
    diagnostics.json   code-quality diagnostics of the slice and the room codes
    alignment.pt       with --align: the collaborative projection W [out, d] (segments are W x)
    alignment/         with --align: the projection's fit (checkpoints/last.ckpt, tb/), as a training run's

``--distinct`` appends collision-resolving levels to the room codes (semantic_ids/distinct.py);
``--align RECIPE`` projects the content first (semantic_ids/alignment.py).
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
        "--distinct appends collision-resolving levels so every item gets its own room code; --align RECIPE first "
        "projects the content with a map trained on that recipe's training interactions (held-out items excluded). "
        "Outputs: OUT/tokenizer.pt, OUT/codes.npz, OUT/diagnostics.json (+ OUT/alignment.pt with --align).",
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
    p.add_argument("--distinct", action="store_true",
                   help="append levels with a counter inside each group of items sharing a room code (base-N digits, "
                   "TIGER-style) so every item with content gets a distinct room code; slice codes get 0 there")
    a = p.add_argument_group("collaborative alignment (cva_rec/semantic_ids/alignment.py)")
    a.add_argument("--align", metavar="RECIPE", default=None,
                   help="before quantising, train a linear projection of the content on the training interactions of "
                   "this recipe's dataset (its dataset.cold_items stay out), then fit RQ-KMeans on projected segments of "
                   "items seen in training and encode every item from its content alone")
    a.add_argument("--align-dim", type=int, default=128, help="projected width (default: %(default)s)")
    a.add_argument("--align-epochs", type=int, default=5, help="passes over the training pairs (default: %(default)s)")
    a.add_argument("--align-batch-size", type=int, default=1024, help="pairs per in-batch softmax (default: %(default)s)")
    a.add_argument("--align-lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    a.add_argument("--align-temperature", type=float, default=0.07, help="softmax temperature (default: %(default)s)")
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


def refuse_foreign_outputs(out: Path) -> None:
    """Re-running into the same --out replaces this command's own files; a file of that name that it did
    not write (another tool's codes.npz, your notes) is refused before any work, and left alone."""
    import json

    from cva_rec.errors import CvaRecError
    from cva_rec.semantic_ids.codes import SemanticCodes
    from cva_rec.semantic_ids.rq_kmeans import RQKMeans

    def diagnostics(path: Path) -> None:
        try:
            if "tokenizer" not in json.loads(path.read_text(encoding="utf-8")):
                raise ValueError
        except (OSError, ValueError, TypeError):
            raise ConfigError(f"{path}: not a tokenize diagnostics file") from None

    for name, load in (("tokenizer.pt", RQKMeans.load), ("codes.npz", SemanticCodes.load), ("diagnostics.json", diagnostics)):
        path = out / name
        if path.exists() or path.is_symlink():
            try:
                load(path)
            except CvaRecError:
                raise ConfigError(f"{path} exists and was not written by `cva-rec tokenize`; refusing to replace it: "
                                  f"choose another --out") from None


def run(args) -> int:
    from cva_rec.io import atomic_write_json, ensure_writable
    from cva_rec.semantic_ids.codes import SemanticCodes
    from cva_rec.semantic_ids.diagnostics import code_diagnostics, format_table
    from cva_rec.semantic_ids.rq_kmeans import RQKMeans, path_errors

    out = Path(args.out)
    refuse_foreign_outputs(out)
    segments, counts, item_ids = load_source(args.source)
    ensure_writable(out, "tokenize writes tokenizer.pt, codes.npz and diagnostics.json there")  # before the fit, not after
    fit_rows, projection, alignment = None, None, None
    if args.align:
        segments, fit_rows, projection, alignment = _align(args, segments, counts, item_ids)
    # aligned: the codebooks are fitted on the items seen in training only
    vectors = _valid_vectors(segments, counts) if fit_rows is None else _valid_vectors(segments[fit_rows], counts[fit_rows])
    log.info("fitting RQ-KMeans L=%d x N=%d on %d segment vectors of %d items (%d-d)",
             args.levels, args.codes, len(vectors), len(counts), vectors.shape[1])
    t0 = time.perf_counter()
    tok = RQKMeans(levels=args.levels, codes=args.codes, iters=args.iters, seed=args.seed, batch_size=args.batch_size,
                   balanced=args.balanced, device=args.device, pca=args.pca, backend=args.backend).fit(vectors, progress=True)
    fit_s = time.perf_counter() - t0
    codes = SemanticCodes.from_features(tok, segments, counts, item_ids, tie_break=args.tie_break)
    slice_flat = codes.slice_codes[codes.slice_mask]
    slice_diag = code_diagnostics(slice_flat, tok.level_errors.tolist(), args.codes)
    means = _mean_segments(segments, counts)
    room_errors = path_errors(tok, means, codes.room_codes)
    extra = 0
    if args.distinct:
        from cva_rec.semantic_ids.distinct import with_distinct_room_codes

        codes, extra = with_distinct_room_codes(codes, _code_distances(tok, means, codes.room_codes))
        slice_flat = codes.slice_codes[codes.slice_mask]
        slice_diag = code_diagnostics(slice_flat, tok.level_errors.tolist() + [float(tok.level_errors[-1])] * extra, args.codes)
    room_diag = code_diagnostics(codes.room_codes, room_errors + room_errors[-1:] * extra, args.codes)

    out.mkdir(parents=True, exist_ok=True)
    tok.save(out / "tokenizer.pt")
    codes.save(out / "codes.npz")
    report = {"source": str(args.source), "tokenizer": tok.config(), "fit_seconds": round(fit_s, 3),
              "tie_break": args.tie_break, "n_segments": int(len(vectors)), "distinct_extra_levels": extra,
              "alignment": alignment, "slice": slice_diag, "room": room_diag}
    if projection is not None:
        from cva_rec.io import atomic_torch_save

        atomic_torch_save({"format": "cva_rec.collaborative_projection", "weight": projection.weight.detach().cpu()},
                          out / "alignment.pt")
    atomic_write_json(out / "diagnostics.json", report)
    print(format_table(slice_diag, f"slice codes ({len(slice_flat)} segments), fit {fit_s:.1f} s"))
    print()
    extra_note = f", {extra} collision-resolving level(s) appended" if args.distinct else ""
    print(format_table(room_diag, f"room codes ({int((codes.room_codes >= 0).all(1).sum())} items with content{extra_note})"))
    print(f"\nwrote {out / 'tokenizer.pt'}, {out / 'codes.npz'}, {out / 'diagnostics.json'}")
    return 0


def _code_distances(tok, means: np.ndarray, codes) -> np.ndarray:
    """Squared distance of each item's mean vector to its code's reconstruction (inf without a code):
    who gets counter 0 in a collision group (the item its code describes best)."""
    import torch

    valid = (codes >= 0).all(1)
    dist = np.full(len(codes), np.inf)
    if valid.any():
        x = tok.transform(means[valid.numpy()]).cpu()
        dist[valid.numpy()] = ((x - tok.decode(codes[valid])) ** 2).sum(1).double().numpy()
    return dist


def _align(args, segments, counts: np.ndarray, item_ids: list):
    """Project every segment through a projection trained on the recipe's training interactions.

    -> (projected segments [n, S, out], rows to fit RQ-KMeans on, projection, report dict)."""
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from cva_rec.semantic_ids.alignment import fit_projection, training_pairs

    recipe = load_config(args.align)
    data = build_data(recipe)
    held_out = None if data.cold_items is None else data.cold_items.numpy()
    pairs = training_pairs(data.sequences, held_out)
    row_of = {str(t): i for i, t in enumerate(item_ids)}
    to_row = np.array([row_of.get(str(t), -1) for t in data.item_tokens], dtype=np.int64)
    rows = to_row[pairs]
    has_content = (rows >= 0).all(1) & (counts[rows.clip(0)] > 0).all(1)
    if not has_content.any():
        raise FeatureStoreError(f"{args.source}: no item of {args.align}'s dataset has content here (item ids do not match)")
    means = _mean_segments(segments, counts)
    projection, report = fit_projection(means, rows[has_content], args.align_dim, args.align_epochs, args.align_batch_size,
                                        args.align_lr, args.align_temperature, args.seed, args.device,
                                        run_dir=Path(args.out) / "alignment", train=recipe["train"])
    held_rows = set(to_row[np.flatnonzero(held_out)].tolist()) - {-1} if held_out is not None else set()
    if held_rows & set(report.rows_read.tolist()):  # training_pairs already refuses this; belt and braces
        raise FeatureStoreError("the alignment read a held-out item's vector")
    # every item, held-out ones included, from its content alone (padding segments stay masked by counts)
    projected = np.concatenate([projection.project(np.asarray(segments[i:i + 4096], dtype=np.float32))
                                for i in range(0, len(counts), 4096)])
    fit_rows = np.zeros(len(counts), dtype=bool)
    fit_rows[report.rows_read] = True
    info = {"recipe": str(args.align), "dim": args.align_dim, "epochs": args.align_epochs, "batch_size": args.align_batch_size,
            "lr": args.align_lr, "temperature": args.align_temperature, "pairs_without_content": int((~has_content).sum()),
            "held_out_items": len(held_rows), "items_fitted": int(fit_rows.sum()), **report.as_dict()}
    log.info("collaborative alignment: %d pairs, %d items, losses %s", report.pairs, len(report.rows_read), report.epoch_losses)
    return projected, fit_rows, projection, info
