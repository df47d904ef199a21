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
``"failures"`` when the store is published. The ``codec`` sampler's notes (items that fell back
to uniform, saliency mode per codec) travel the same way (``codec.json`` -> ``"codec_saliency"``).

Two halves, so any runner can put them on different processes: :meth:`KeyFrameChooser.prepare`
(decode + choose, CPU/PyAV only: runs in DataLoader workers with ``num_workers``) and
:class:`StoreSink` (encode one item per forward, write rows). ``shard=(index, count)`` runs one
round-robin share of the videos into its own store (:mod:`data_prep.shards`); ``merge-stores``
joins the shards (:mod:`data_prep.merge_stores`). ``patch_tokens`` writes codec patch tokens
(:mod:`data_prep.patch_tokens`) into a token store; ``encoder`` ``gve``/``qwen2_vl`` writes one
vector per video or segment (:mod:`data_prep.video_embedders`).
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
from cva_rec.io import atomic_write_json
from data_prep.frames import DEFAULT_SHORT_SIDE, N_SEGMENTS, CandidateFrames, FrameError, decode_candidates

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
FAILURES_FILE = "failures.json"
CODEC_FILE = "codec.json"


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
    # codec patch tokens (data_prep/patch_tokens.py): a token store instead of one vector per frame
    patch_tokens: bool = False
    token_budget: int = 256
    patch_ratio: float = 0.25
    i_frame_share: float = 0.25
    # video-level embedders (gve, qwen2_vl): vectors per video; None = the embedder's default prompt
    video_segments: int = 1
    instruction: str | None = None


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


@dataclass
class PreparedItem:
    """One item after decoding and key-frame choice (CPU work, DataLoader-worker safe), before encoding."""

    row: int
    item_id: str
    path: str
    frames: np.ndarray | None = None  # [k, H, W, 3] uint8, the chosen frames in time order
    timestamps: np.ndarray | None = None  # [k] seconds
    failure: dict | None = None  # {"item_id", "path", "reason"} when the item yields nothing
    codec: dict | None = None  # codec sampler: {"codec", "mode", "note"}
    intra: np.ndarray | None = None  # [k] bool, codec sampler only
    maps: np.ndarray | None = None  # [k, H, W] float16 saliency maps (patch tokens only)


class KeyFrameChooser:
    """Builds the sampler (and CLIP selector when needed) once, then decodes and picks frames per item."""

    def __init__(self, cfg: VideoExtractConfig, titles: dict[str, str] | None):
        from data_prep.samplers import NEEDS_CODEC, NEEDS_SCORES, get_sampler

        self.cfg = cfg
        self.sampler = get_sampler(cfg.sampler)  # unknown name -> ConfigError before any decoding
        if cfg.n_frames < 1:
            raise ConfigError(f"--n-frames must be >= 1, got {cfg.n_frames}")
        self.codec = cfg.sampler in NEEDS_CODEC
        if cfg.patch_tokens and not self.codec:
            raise ConfigError("patch tokens are chosen by codec saliency: use --sampler codec with --patch-tokens")
        self.keep_maps = cfg.patch_tokens
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

    def decode(self, item_id: str, path: str | Path) -> CandidateFrames | FrameError:
        """The candidates this sampler chooses from (with codec saliency for ``codec``)."""
        if self.codec:
            from data_prep.codec import decode_codec_candidates

            return decode_codec_candidates(path, item_id, n_segments=self.cfg.n_segments, short_side=self.cfg.short_side,
                                           keep_maps=self.keep_maps)
        return decode_candidates(path, item_id, n_segments=self.cfg.n_segments, short_side=self.cfg.short_side,
                                 method=self.cfg.decode_method)

    def choose(self, cand: CandidateFrames) -> np.ndarray | str:
        """Ascending candidate indices, or a failure reason."""
        if self.codec:
            from data_prep.samplers import sample_codec, sample_uniform

            if cand.mode == "uniform":  # no codec signal: recorded in the store's metadata
                return sample_uniform(len(cand), self.cfg.n_frames)
            return sample_codec(len(cand), self.cfg.n_frames, scores=cand.saliency, intra=cand.intra)
        if self.selector is None:
            return self.sampler(len(cand), self.cfg.n_frames, item_id=cand.item_id, seed=self.cfg.seed)
        title = self.titles.get(cand.item_id) if self.titles else None
        if title is None and self.cfg.title_mode != "none":
            return "no title for this item in the titles file"
        return self.selector.select(cand.item_id, title or "", cand.frames, self.cfg.n_frames)

    def prepare(self, row: int, item_id: str, path: str | Path) -> PreparedItem:
        """Decode + choose one item (no encoder involved: safe in DataLoader worker processes)."""
        item = PreparedItem(row, item_id, str(path))
        cand = self.decode(item_id, path)
        if isinstance(cand, FrameError):
            item.failure = asdict(cand)
            return item
        chosen = self.choose(cand)
        if isinstance(chosen, str):
            item.failure = {"item_id": item_id, "path": str(path), "reason": chosen}
            return item
        item.frames, item.timestamps = cand.frames[chosen], cand.timestamps[chosen]
        if self.codec:
            item.codec = {"codec": cand.codec, "mode": cand.mode, "note": cand.notes[-1] if cand.mode != "motion+residual" else ""}
            item.intra = cand.intra[chosen]
            if cand.maps is not None:
                item.maps = cand.maps[chosen]
        return item


def _listing_sha256(videos: list[tuple[str, Path]]) -> str:
    """Hash of (name, size) of the inputs: cheap, stable across resumes (mtime is not)."""
    h = hashlib.sha256()
    for item_id, p in videos:
        h.update(f"{p.name}\t{p.stat().st_size}\n".encode("utf-8"))
    return h.hexdigest()


def _atomic_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, sort_keys=True, ensure_ascii=False)


class SideRecords:
    """Per-item records kept beside a store while it is written, merged into ``meta.json`` at publish.

    ``failures.json``: item -> failure. ``codec.json``: items that fell back to uniform and the
    saliency mode of each codec seen. Both are keyed, so re-recording an item after a resume is
    idempotent; they are written before the rows are marked done, so a kill never loses one.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.failures: dict[str, dict] = self._load(FAILURES_FILE)
        codec = self._load(CODEC_FILE)
        self.fallback: dict[str, str] = codec.get("uniform_fallback", {})
        self.mode_by_codec: dict[str, list[str]] = codec.get("mode_by_codec", {})
        self._dirty = False

    def _load(self, name: str) -> dict:
        side = self.folder / name
        return json.loads(side.read_text(encoding="utf-8")) if side.exists() else {}

    def add(self, item: PreparedItem) -> None:
        if item.failure is not None:
            self.failures[item.item_id] = item.failure
            self._dirty = True
        if item.codec is not None:
            modes = self.mode_by_codec.setdefault(item.codec["codec"], [])
            if item.codec["mode"] not in modes:
                modes.append(item.codec["mode"])
                modes.sort()
                self._dirty = True
            if item.codec["mode"] == "uniform":
                self.fallback[item.item_id] = item.codec["note"]
                self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        if self.failures:
            _atomic_json(self.folder / FAILURES_FILE, self.failures)
        if self.fallback or self.mode_by_codec:
            _atomic_json(self.folder / CODEC_FILE, {"uniform_fallback": self.fallback, "mode_by_codec": self.mode_by_codec})
        self._dirty = False


def codec_meta(fallback_items, fallback_reasons, mode_by_codec: dict[str, list[str]]) -> dict:
    """The ``codec_saliency`` entry of ``meta.json`` (also rebuilt by ``merge-stores`` from shards)."""
    from data_prep.codec import MOTION_UNIT_PX, RESIDUAL_UNIT

    return {
        "saliency": f"|mv| / {MOTION_UNIT_PX} px + |luma - motion-compensated prediction| / {RESIDUAL_UNIT}",
        "modes_by_codec": {k: sorted(v) for k, v in sorted(mode_by_codec.items())},
        "uniform_fallback": sorted(fallback_items),
        "n_uniform_fallback": len(set(fallback_items)),
        "uniform_fallback_reason": sorted(set(fallback_reasons)),
    }


def merge_codec_meta(entries: list[dict]) -> dict:
    """One ``codec_saliency`` entry from several shards' entries (order-free: equals a single run's)."""
    modes: dict[str, set[str]] = {}
    for e in entries:
        for codec, seen in e["modes_by_codec"].items():
            modes.setdefault(codec, set()).update(seen)
    return codec_meta([i for e in entries for i in e["uniform_fallback"]],
                      [r for e in entries for r in e["uniform_fallback_reason"]], {k: sorted(v) for k, v in modes.items()})


def publish_side_records(store: Path) -> list[dict]:
    """Move ``failures.json`` / ``codec.json`` into ``meta.json`` (atomic replace); idempotent. Returns the failures."""
    meta_path = store / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    fail_side, codec_side = store / FAILURES_FILE, store / CODEC_FILE
    if fail_side.exists():
        failures = json.loads(fail_side.read_text(encoding="utf-8"))
        meta["failures"] = [failures[k] for k in sorted(failures)]
        meta["n_failures"] = len(failures)
    if codec_side.exists():
        codec = json.loads(codec_side.read_text(encoding="utf-8"))
        fallback = codec["uniform_fallback"]
        meta["codec_saliency"] = codec_meta(list(fallback), list(fallback.values()), codec["mode_by_codec"])
    if fail_side.exists() or codec_side.exists():
        _atomic_json(meta_path, meta)
        for side in (fail_side, codec_side):
            side.unlink(missing_ok=True)
    return meta.get("failures", [])


class StoreSink:
    """Encodes prepared items and writes them as rows of one (shard) store; shared by every runner.

    Each item's frames are encoded as their own batch, so an item's bytes never depend on which
    other items were encoded with it (single process, resumed, or any shard of a distributed run).
    """

    def __init__(self, writer, encoder, cfg: VideoExtractConfig, tokenizer=None):
        self.writer, self.encoder, self.cfg, self.tokenizer = writer, encoder, cfg, tokenizer
        self.max_frames = writer.max_frames
        self.records = SideRecords(writer.partial)
        self.frames_encoded = 0

    def encode(self, item: PreparedItem) -> tuple | None:
        """(vectors [k, dim] float32, timestamps [k], positions [k, 2] or None) of one item; None for a failure."""
        if item.failure is not None:
            return None
        if self.tokenizer is not None:
            return self.tokenizer(item.frames, item.timestamps, item.intra, item.maps)
        if getattr(self.encoder, "video_level", False):
            return (*self.encoder.encode_video(item.frames, item.timestamps), None)
        return self.encoder.encode(item.frames), item.timestamps, None

    def write(self, items: list[PreparedItem], encoded: list[tuple | None]) -> None:
        feats = np.zeros((len(items), self.max_frames, self.writer.dim), dtype=np.float32)
        stamps = np.zeros((len(items), self.max_frames), dtype=np.float32)
        counts = np.zeros(len(items), dtype=np.int64)
        positions = np.zeros((len(items), self.max_frames, 2), dtype=np.int64)
        for j, (item, enc) in enumerate(zip(items, encoded)):
            self.records.add(item)
            if enc is None:
                continue
            vec, ts, pos = enc
            k = len(vec)
            feats[j, :k], stamps[j, :k], counts[j] = vec, ts, k
            if pos is not None:
                positions[j, :k] = pos
            self.frames_encoded += k
        self.records.save()  # before the rows are marked done, so a kill never loses a record
        rows = [i.row for i in items]
        if self.tokenizer is not None:
            self.writer.write(rows, feats, counts, stamps, positions)
        else:
            self.writer.write(rows, feats, counts, stamps)


def build_encoder(cfg: VideoExtractConfig, *, encoder_batch_size: int = 32, device: str = "cpu"):
    from data_prep.frame_encoders import build_frame_encoder

    enc_kwargs: dict[str, Any] = {"batch_size": encoder_batch_size, "device": device}
    if cfg.encoder_checkpoint:
        enc_kwargs["checkpoint"] = cfg.encoder_checkpoint
    if cfg.encoder_model_name:
        enc_kwargs["model_name"] = cfg.encoder_model_name
    if cfg.encoder in ("gve", "qwen2_vl"):
        enc_kwargs["segments"] = cfg.video_segments
        if cfg.instruction is not None:
            enc_kwargs["instruction"] = cfg.instruction
    return build_frame_encoder(cfg.encoder, **enc_kwargs)


def store_metadata(cfg: VideoExtractConfig, encoder, videos: list[tuple[str, Path]], titles_csv) -> dict:
    """What a store's ``meta.json`` says about its extraction (identical for every shard of a run)."""
    from cva_rec.features.store import file_sha256

    source_hashes = {"videos_listing_sha256": _listing_sha256(videos)}
    if titles_csv:
        source_hashes["titles_sha256"] = file_sha256(titles_csv)
    return {
        "content": "video",
        "encoder": encoder.name,
        "encoder_config": encoder.describe(),
        "sampler": cfg.sampler,
        "extract_config": asdict(cfg),
        "timestamps_unit": "seconds",
        "source_hashes": source_hashes,
    }


def open_sink(out: Path, item_ids: list[str], cfg: VideoExtractConfig, encoder, meta: dict, *,
              overwrite: bool = False) -> StoreSink:
    from cva_rec.features.store import FeatureStoreWriter

    if cfg.patch_tokens:
        from cva_rec.features.tokens import TokenStoreWriter
        from data_prep.patch_tokens import PatchTokenizer, TokenBudget

        tokenizer = PatchTokenizer(encoder, TokenBudget(cfg.token_budget, cfg.patch_ratio, cfg.i_frame_share))
        writer = TokenStoreWriter(out, item_ids, cfg.token_budget, encoder.dim, tokenizer.grid, dtype=cfg.dtype,
                                  metadata=meta, overwrite=overwrite)
        return StoreSink(writer, encoder, cfg, tokenizer)
    max_frames = min(cfg.n_frames, cfg.n_segments)
    if getattr(encoder, "video_level", False):
        if cfg.patch_tokens:
            raise ConfigError(f"--patch-tokens needs a frame encoder with a patch grid, not the video embedder {encoder.name!r}")
        max_frames = min(cfg.video_segments, max_frames)  # one vector per segment
    writer = FeatureStoreWriter(out, item_ids, max_frames, encoder.dim, dtype=cfg.dtype, metadata=meta, overwrite=overwrite)
    return StoreSink(writer, encoder, cfg)


class _PrepareDataset:
    """Map-style dataset over pending rows: ``prepare`` (PyAV decode + choice) runs in DataLoader workers."""

    def __init__(self, chooser: KeyFrameChooser, videos: list[tuple[str, Path]], rows: np.ndarray):
        self.chooser, self.videos, self.rows = chooser, videos, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> PreparedItem:
        row = int(self.rows[i])
        return self.chooser.prepare(row, *self.videos[row])


def prepared_batches(chooser: KeyFrameChooser, videos: list[tuple[str, Path]], rows: np.ndarray, batch_items: int,
                     num_workers: int):
    """Prepared items in row order, ``batch_items`` at a time; ``num_workers`` > 0 decodes in worker processes
    (torch DataLoader, order preserved) so the encoder never waits on PyAV."""
    if num_workers <= 0:
        for start in range(0, len(rows), batch_items):
            yield [chooser.prepare(int(r), *videos[r]) for r in rows[start:start + batch_items]]
        return
    from torch.utils.data import DataLoader

    # Workers start from a fresh interpreter (forkserver), not a fork of this process: a forked worker
    # inherits libav's internal locks in whatever state this process's decoding left them (this process
    # may have decoded videos already, e.g. a resumed shard), and PyAV 18's swscale then waits forever
    # in the first frame conversion. The dataset is small and picklable; the cost is one start-up per worker.
    yield from DataLoader(_PrepareDataset(chooser, videos, rows), batch_size=batch_items, num_workers=num_workers,
                          collate_fn=list, prefetch_factor=2, persistent_workers=False, multiprocessing_context="forkserver")


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
    num_workers: int = 0,
    shard: tuple[int, int] | None = None,
) -> ExtractReport:
    """Run the whole video pipeline into a feature store at ``out`` (see module doc).

    ``shard=(index, count)``: only the index-th of ``count`` deterministic round-robin shares of
    the sorted video listing, into its own resumable store ``<out>.shards/shard-IIIII-of-CCCCC``
    (:mod:`data_prep.shards`); ``cva-rec merge-stores`` joins the shards into ``out``.
    """
    from cva_rec.plain_progress import progress_bar  # a bar on a terminal, plain lines in a log

    from data_prep.converters.titles import read_titles
    from data_prep.shards import shard_metadata, shard_rows, shard_store_path

    cfg = cfg or VideoExtractConfig()
    start = time.perf_counter()
    videos = list_videos(video_dir)
    out = Path(out) if shard is None else shard_store_path(out, *shard)
    if out.exists() and any((out / f).exists() for f in (FAILURES_FILE, CODEC_FILE)):  # killed between publish and merge
        failures = publish_side_records(out)
        return ExtractReport(out, len(json.loads((out / "item_ids.json").read_text())), 0, failures)
    titles = read_titles(titles_csv).titles if titles_csv else None
    chooser = KeyFrameChooser(cfg, titles)
    encoder = build_encoder(cfg, encoder_batch_size=encoder_batch_size, device=device)
    meta = store_metadata(cfg, encoder, videos, titles_csv)
    if shard is not None:
        meta["shard"] = shard_metadata(len(videos), *shard)
        videos = [videos[r] for r in shard_rows(len(videos), *shard)]
    item_ids = [i for i, _ in videos]
    sink = open_sink(out, item_ids, cfg, encoder, meta, overwrite=overwrite)
    pending = sink.writer.pending_rows()
    report = ExtractReport(out, len(item_ids), len(item_ids) - len(pending))
    bar = progress_bar(total=len(pending), desc=f"extract {cfg.encoder}/{cfg.sampler}{cfg.n_frames}", unit="video",
                       disable=not progress)
    for items in prepared_batches(chooser, videos, pending, batch_items, num_workers):
        sink.write(items, [sink.encode(item) for item in items])
        bar.update(len(items))
    bar.close()
    path = sink.writer.finalize()
    report.frames_encoded = sink.frames_encoded
    report.failures = publish_side_records(path)
    report.seconds = time.perf_counter() - start
    return report
