"""The tokenize job: content vectors -> RQ-KMeans tokenizer + slice/room codes + diagnostics, in a run folder.

Its settings are the ``tokenize`` section of the one schema (:data:`cva_rec.config.schema.JOBS`,
``load_config(path, job="tokenize")``; ``cva-rec tokenize`` maps its options onto those keys).
Input (``tokenize.source``) is a feature store directory (every valid frame/segment vector is a
slice) or a ``.npy`` array ``[n, d]`` (one vector per item: slice = room) or ``[n, S, d]`` (all S
segments valid). The output folder is claimed like a training run's (:mod:`cva_rec.jobs.run_folder`:
a lock while it runs, one config per folder; the same config may run again and replaces its files)
and holds::

    config.yaml        the resolved tokenize settings (written before the fit)
    tokenizer.pt       the fitted RQKMeans (+ PCA), torch.save of plain tensors (weights_only loadable)
    codes.npz          SemanticCodes: slice codes [n, S, L] + mask, room codes [n, L], item ids
                       (feature-store row order; align to a dataset with SemanticCodes.align)
    diagnostics.json   code-quality diagnostics of the slice and the room codes
    alignment.pt       with tokenize.align: the collaborative projection W [out, d] (segments are W x)
    alignment/         with tokenize.align: the projection's fit (checkpoints/last.ckpt, tb/), as a training run's
    metrics.json       written last: a summary and the config identity

``tokenize.distinct`` appends collision-resolving levels to the room codes (distinct.py);
``tokenize.align`` projects the content first (alignment.py).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, Mapping

import numpy as np

import cva_rec
from cva_rec.errors import ConfigError, FeatureStoreError

log = logging.getLogger(__name__)
#: the files a tokenize run writes besides config.yaml and metrics.json
OUTPUTS = ("tokenizer.pt", "codes.npz", "diagnostics.json", "alignment.pt")


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
    """Re-running into the same folder replaces this job's own files; a file of that name that it did
    not write (another tool's codes.npz, your notes) is refused before any work, and left alone."""
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


def tokenize_folder(cfg: Mapping[str, Any], out: str | Path | None = None) -> Path:
    """``out`` when given (``--out``), else ``output.dir/output.name``."""
    if out is not None:
        return Path(out)
    if not cfg["output"]["name"]:
        raise ConfigError("tokenize needs an output folder: give --out or output.name")
    return Path(cfg["output"]["dir"]) / cfg["output"]["name"]


def run_tokenize(cfg: Mapping[str, Any], out: Path, overwrite: bool = False) -> Dict[str, Any]:
    """Fit the tokenizer ``cfg["tokenize"]`` describes and write its run folder ``out``; returns
    ``{"metrics": ..., "slice": ..., "room": ..., ...}`` (what ``cva-rec tokenize`` prints)."""
    from cva_rec.io import atomic_torch_save, atomic_write_json, ensure_writable
    from cva_rec.jobs.run_folder import claim_run_folder
    from cva_rec.semantic_ids.codes import SemanticCodes
    from cva_rec.semantic_ids.diagnostics import code_diagnostics
    from cva_rec.semantic_ids.rq_kmeans import RQKMeans, path_errors

    t = cfg["tokenize"]
    refuse_foreign_outputs(out)
    segments, counts, item_ids = load_source(t["source"])
    ensure_writable(out, "tokenize writes tokenizer.pt, codes.npz and diagnostics.json there")  # before the fit, not after
    # the same config may run again (it replaces its own files); another config is refused unless overwrite
    with claim_run_folder(out, cfg, overwrite=overwrite, resume=True, job="tokenize", resume_hint=None,
                          elsewhere="another --out") as claim:
        (out / "metrics.json").unlink(missing_ok=True)  # a finished earlier run of this config: not finished any more
        claim.commit_config()
        fit_rows, projection, alignment = None, None, None
        if t["align"]:
            segments, fit_rows, projection, alignment = _align(t, out, segments, counts, item_ids)
        # aligned: the codebooks are fitted on the items seen in training only
        vectors = _valid_vectors(segments, counts) if fit_rows is None else _valid_vectors(segments[fit_rows], counts[fit_rows])
        log.info("fitting RQ-KMeans L=%d x N=%d on %d segment vectors of %d items (%d-d)",
                 t["levels"], t["codes"], len(vectors), len(counts), vectors.shape[1])
        t0 = time.perf_counter()
        tok = RQKMeans(levels=t["levels"], codes=t["codes"], iters=t["iters"], seed=t["seed"], batch_size=t["batch_size"],
                       balanced=t["balanced"], device=t["device"], pca=t["pca"], backend=t["backend"]).fit(vectors, progress=True)
        fit_s = time.perf_counter() - t0
        codes = SemanticCodes.from_features(tok, segments, counts, item_ids, tie_break=t["tie_break"])
        means = _mean_segments(segments, counts)
        room_errors = path_errors(tok, means, codes.room_codes)
        extra = 0
        if t["distinct"]:
            from cva_rec.semantic_ids.distinct import with_distinct_room_codes

            codes, extra = with_distinct_room_codes(codes, _code_distances(tok, means, codes.room_codes))
        slice_flat = codes.slice_codes[codes.slice_mask]
        slice_diag = code_diagnostics(slice_flat, tok.level_errors.tolist() + [float(tok.level_errors[-1])] * extra, t["codes"])
        room_diag = code_diagnostics(codes.room_codes, room_errors + room_errors[-1:] * extra, t["codes"])

        tok.save(out / "tokenizer.pt")
        codes.save(out / "codes.npz")
        if projection is not None:
            atomic_torch_save({"format": "cva_rec.collaborative_projection", "weight": projection.weight.detach().cpu()},
                              out / "alignment.pt")
        report = {"source": str(t["source"]), "tokenizer": tok.config(), "fit_seconds": round(fit_s, 3),
                  "tie_break": t["tie_break"], "n_segments": int(len(vectors)), "distinct_extra_levels": extra,
                  "alignment": alignment, "slice": slice_diag, "room": room_diag}
        atomic_write_json(out / "diagnostics.json", report)
        summary = ("unique_fraction", "collision_rate", "largest_collision_group")
        metrics = claim.write_metrics({
            "run": out.name, "kind": "tokenize", "source": str(t["source"]), "levels": int(codes.levels),
            "n_items": len(item_ids), "items_with_content": int((codes.room_codes >= 0).all(1).sum()),
            "n_segments": int(len(vectors)), "distinct_extra_levels": extra, "fit_seconds": round(fit_s, 3),
            "slice": {k: slice_diag.get(k) for k in summary}, "room": {k: room_diag.get(k) for k in summary},
            "outputs": [name for name in OUTPUTS if (out / name).is_file()], "cva_rec_version": cva_rec.__version__})
    return {"metrics": metrics, "slice": slice_diag, "room": room_diag, "n_slices": int(len(slice_flat)),
            "items_with_content": metrics["items_with_content"], "extra_levels": extra, "fit_seconds": fit_s}


def _code_distances(tok, means: np.ndarray, codes) -> np.ndarray:
    """Squared distance of each item's mean vector to its code's reconstruction (inf without a code):
    who gets counter 0 in a collision group (the item its code describes best)."""
    valid = (codes >= 0).all(1)
    dist = np.full(len(codes), np.inf)
    if valid.any():
        x = tok.transform(means[valid.numpy()]).cpu()
        dist[valid.numpy()] = ((x - tok.decode(codes[valid])) ** 2).sum(1).double().numpy()
    return dist


def _align(t: Mapping[str, Any], out: Path, segments, counts: np.ndarray, item_ids: list):
    """Project every segment through a projection trained on the recipe ``t["align"]``'s training interactions
    (its fit, as a training run's, in ``out/alignment``).

    -> (projected segments [n, S, out], rows to fit RQ-KMeans on, projection, report dict)."""
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from cva_rec.semantic_ids.alignment import fit_projection, training_pairs

    recipe = load_config(t["align"])
    data = build_data(recipe)
    held_out = None if data.cold_items is None else data.cold_items.numpy()
    pairs = training_pairs(data.sequences, held_out)
    row_of = {str(tok): i for i, tok in enumerate(item_ids)}
    to_row = np.array([row_of.get(str(tok), -1) for tok in data.item_tokens], dtype=np.int64)
    rows = to_row[pairs]
    has_content = (rows >= 0).all(1) & (counts[rows.clip(0)] > 0).all(1)
    if not has_content.any():
        raise FeatureStoreError(f"{t['source']}: no item of {t['align']}'s dataset has content here (item ids do not match)")
    means = _mean_segments(segments, counts)
    projection, report = fit_projection(means, rows[has_content], t["align_dim"], t["align_epochs"], t["align_batch_size"],
                                        t["align_lr"], t["align_temperature"], t["seed"], t["device"],
                                        run_dir=out / "alignment", train=recipe["train"])
    held_rows = set(to_row[np.flatnonzero(held_out)].tolist()) - {-1} if held_out is not None else set()
    if held_rows & set(report.rows_read.tolist()):  # training_pairs already refuses this; belt and braces
        raise FeatureStoreError("the alignment read a held-out item's vector")
    # every item, held-out ones included, from its content alone (padding segments stay masked by counts)
    projected = np.concatenate([projection.project(np.asarray(segments[i:i + 4096], dtype=np.float32))
                                for i in range(0, len(counts), 4096)])
    fit_rows = np.zeros(len(counts), dtype=bool)
    fit_rows[report.rows_read] = True
    info = {"recipe": str(t["align"]), "dim": t["align_dim"], "epochs": t["align_epochs"], "batch_size": t["align_batch_size"],
            "lr": t["align_lr"], "temperature": t["align_temperature"], "pairs_without_content": int((~has_content).sum()),
            "held_out_items": len(held_rows), "items_fitted": int(fit_rows.sum()), **report.as_dict()}
    log.info("collaborative alignment: %d pairs, %d items, losses %s", report.pairs, len(report.rows_read), report.epoch_losses)
    return projected, fit_rows, projection, info
