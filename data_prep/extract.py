"""Videos -> candidate frames -> key frames -> frozen encoder -> feature store (resumable).

One row per video file in the directory (item id = file stem). Per item: decode the 100
segment candidates (:mod:`data_prep.frames`), choose N with a sampler
(:mod:`data_prep.samplers` / :mod:`data_prep.clip_scorer`), encode them
(:mod:`data_prep.frame_encoders`) and write features + the chosen frames' timestamps (s).

Resumability: rows are written through :class:`cva_rec.features.store.FeatureStoreWriter`
a few items at a time; a killed run restarted with the same arguments skips finished rows.
Each item's frames are encoded as their own batch, so an item's features never depend on
which other items shared a batch (CPU kernels may round differently per batch size), and
a resumed run is byte-identical to an uninterrupted one.

Failures (unreadable / zero-length / non-video files, missing titles) do not stop the run:
their row has ``num_frames = 0`` and the failure is kept in ``<store>.partial/failures.json``
(written before the row, so a resume never loses one) and merged into ``meta.json`` under
``"failures"`` when the store is published.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cva_rec.errors import ConfigError, DataError
from data_prep.frames import DEFAULT_SHORT_SIDE, N_SEGMENTS, CandidateFrames, FrameError, decode_candidates

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
FAILURES_FILE = "failures.json"


@dataclass
class VideoExtractConfig:
    """Everything that decides the stored bytes (and so must match on resume)."""

    sampler: str = "mid5"
    n_frames: int = 5
    encoder: str = "efficientnet_lite0"
    encoder_checkpoint: str | None = None
    encoder_model_name: str | None = None  # timm only
    clip_checkpoint: str | None = None
    clip_model_name: str | None = None  # open_clip only
    title_mode: str = "clean"
    noise_std: float = 0.05
    mask_ratio: float = 0.5
    seed: int = 0
    short_side: int = DEFAULT_SHORT_SIDE
    n_segments: int = N_SEGMENTS
    decode_method: str = "sequential"
    dtype: str = "float16"


@dataclass
class ExtractReport:
    path: Path
    n_items: int
    n_done_before: int
    failures: list[dict] = field(default_factory=list)
    frames_encoded: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"feature store {self.path}: {self.n_items} items ({self.n_done_before} already done before this run), "
                 f"{self.frames_encoded} frames encoded in {self.seconds:.1f} s, {len(self.failures)} failures"]
        lines += [f"  FAILED {f['item_id']} ({f['path']}): {f['reason']}" for f in self.failures]
        return "\n".join(lines)


def list_videos(video_dir: str | Path) -> list[tuple[str, Path]]:
    """(item id, path) of every video file in ``video_dir`` (by extension), sorted by item id."""
    d = Path(video_dir)
    if not d.is_dir():
        raise DataError(f"video directory {d} does not exist")
    found = sorted((p.stem, p) for p in d.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    if not found:
        raise DataError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in {d}")
    ids = [i for i, _ in found]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise DataError(f"{d}: several files share an item id (file stem): {dup[:10]}")
    return found


class KeyFrameChooser:
    """Builds the sampler (and CLIP selector when needed) once, then picks frames per item."""

    def __init__(self, cfg: VideoExtractConfig, titles: dict[str, str] | None):
        from data_prep.samplers import NEEDS_SCORES, get_sampler

        self.cfg = cfg
        self.sampler = get_sampler(cfg.sampler)  # unknown name -> ConfigError before any decoding
        if cfg.n_frames < 1:
            raise ConfigError(f"--n-frames must be >= 1, got {cfg.n_frames}")
        self.titles = titles
        self.selector = None
        if cfg.sampler in NEEDS_SCORES:
            from data_prep.clip_scorer import ClipTitleScorer, TitleFrameSelector

            if titles is None:
                raise ConfigError("the 'title' sampler needs a titles file (--titles)")
            scorer = None
            if cfg.title_mode != "none" or cfg.clip_checkpoint:
                scorer = ClipTitleScorer(cfg.clip_checkpoint, model_name=cfg.clip_model_name)
            self.selector = TitleFrameSelector(scorer, cfg.title_mode, noise_std=cfg.noise_std, mask_ratio=cfg.mask_ratio,
                                               seed=cfg.seed, title_pool=sorted(titles.items()))

    def choose(self, cand: CandidateFrames) -> np.ndarray | str:
        """Ascending candidate indices, or a failure reason."""
        if self.selector is None:
            return self.sampler(len(cand), self.cfg.n_frames, item_id=cand.item_id, seed=self.cfg.seed)
        title = self.titles.get(cand.item_id) if self.titles else None
        if title is None and self.cfg.title_mode != "none":
            return "no title for this item in the titles file"
        return self.selector.select(cand.item_id, title or "", cand.frames, self.cfg.n_frames)


def _listing_sha256(videos: list[tuple[str, Path]]) -> str:
    """Hash of (name, size) of the inputs: cheap, stable across resumes (mtime is not)."""
    h = hashlib.sha256()
    for item_id, p in videos:
        h.update(f"{p.name}\t{p.stat().st_size}\n".encode("utf-8"))
    return h.hexdigest()


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _merge_failures_into_meta(store: Path) -> list[dict]:
    """Move ``failures.json`` into ``meta.json`` (atomic replace); idempotent."""
    side = store / FAILURES_FILE
    meta_path = store / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if side.exists():
        failures = json.loads(side.read_text(encoding="utf-8"))
        meta["failures"] = [failures[k] for k in sorted(failures)]
        meta["n_failures"] = len(failures)
        _atomic_json(meta_path, meta)
        side.unlink()
    return meta.get("failures", [])


def extract_video_features(
    video_dir: str | Path,
    out: str | Path,
    cfg: VideoExtractConfig | None = None,
    *,
    titles_csv: str | Path | None = None,
    batch_items: int = 8,
    encoder_batch_size: int = 32,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
) -> ExtractReport:
    """Run the whole video pipeline into a feature store at ``out`` (see module doc)."""
    from tqdm.auto import tqdm

    from cva_rec.features.store import FeatureStoreWriter, file_sha256
    from data_prep.converters.titles import read_titles
    from data_prep.frame_encoders import build_frame_encoder

    cfg = cfg or VideoExtractConfig()
    start = time.perf_counter()
    out = Path(out)
    if out.exists() and (out / FAILURES_FILE).exists():  # killed between publish and merge
        failures = _merge_failures_into_meta(out)
        return ExtractReport(out, len(json.loads((out / "item_ids.json").read_text())), 0, failures)
    videos = list_videos(video_dir)
    titles = read_titles(titles_csv).titles if titles_csv else None
    chooser = KeyFrameChooser(cfg, titles)
    enc_kwargs: dict[str, Any] = {"batch_size": encoder_batch_size, "device": device}
    if cfg.encoder_checkpoint:
        enc_kwargs["checkpoint"] = cfg.encoder_checkpoint
    if cfg.encoder_model_name:
        enc_kwargs["model_name"] = cfg.encoder_model_name
    encoder = build_frame_encoder(cfg.encoder, **enc_kwargs)

    item_ids = [i for i, _ in videos]
    source_hashes = {"videos_listing_sha256": _listing_sha256(videos)}
    if titles_csv:
        source_hashes["titles_sha256"] = file_sha256(titles_csv)
    meta = {
        "content": "video",
        "encoder": encoder.name,
        "encoder_config": encoder.describe(),
        "sampler": cfg.sampler,
        "extract_config": asdict(cfg),
        "timestamps_unit": "seconds",
        "source_hashes": source_hashes,
    }
    max_frames = min(cfg.n_frames, cfg.n_segments)
    writer = FeatureStoreWriter(out, item_ids, max_frames, encoder.dim, dtype=cfg.dtype, metadata=meta, overwrite=overwrite)
    side = writer.partial / FAILURES_FILE
    failures: dict[str, dict] = json.loads(side.read_text(encoding="utf-8")) if side.exists() else {}
    pending = writer.pending_rows()
    report = ExtractReport(out, len(item_ids), len(item_ids) - len(pending))
    bar = tqdm(total=len(pending), desc=f"extract {cfg.encoder}/{cfg.sampler}{cfg.n_frames}", unit="video",
               disable=not progress)
    for chunk_start in range(0, len(pending), batch_items):
        rows = pending[chunk_start:chunk_start + batch_items]
        feats = np.zeros((len(rows), max_frames, encoder.dim), dtype=np.float32)
        stamps = np.zeros((len(rows), max_frames), dtype=np.float32)
        counts = np.zeros(len(rows), dtype=np.int64)
        new_failure = False
        for j, row in enumerate(rows):
            item_id, path = videos[row]
            cand = decode_candidates(path, item_id, n_segments=cfg.n_segments, short_side=cfg.short_side,
                                     method=cfg.decode_method)
            if isinstance(cand, FrameError):
                failures[item_id] = asdict(cand)
                new_failure = True
                bar.update(1)
                continue
            chosen = chooser.choose(cand)
            if isinstance(chosen, str):
                failures[item_id] = {"item_id": item_id, "path": str(path), "reason": chosen}
                new_failure = True
                bar.update(1)
                continue
            k = len(chosen)
            feats[j, :k] = encoder.encode(cand.frames[chosen])  # one item per forward: batch-independent bytes
            stamps[j, :k] = cand.timestamps[chosen]
            counts[j] = k
            report.frames_encoded += k
            bar.update(1)
        if new_failure:  # before the rows are marked done, so a kill never loses a failure
            _atomic_json(side, failures)
        writer.write(rows, feats, counts, stamps)
    bar.close()
    path = writer.finalize()
    report.failures = _merge_failures_into_meta(path)
    report.seconds = time.perf_counter() - start
    return report
