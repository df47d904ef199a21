"""``cva-rec prep-frames`` and ``cva-rec extract-video``: the offline video pipeline (CVA Phase I).

Wire-up: entry points ``prep-frames = data_prep.cli_video:register_prep_frames`` and
``extract-video = data_prep.cli_video:register_extract_video`` in the ``cva_rec.commands``
group. Also runnable alone: ``python -m data_prep.cli_video {prep-frames,extract-video} ...``.

* ``prep-frames``: videos -> the N chosen key frames as JPEG files plus ``manifest.json``
  (timestamps, candidate indices, failures): to inspect a sampler or feed an external encoder.
* ``extract-video``: videos -> key frames -> frozen frame encoder -> feature store (resumable).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

PREP_FRAMES = "prep-frames"
EXTRACT_VIDEO = "extract-video"


def _add_selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--videos", required=True, type=Path, help="directory of video files; item id = file name without extension")
    p.add_argument("--titles", type=Path, default=None,
                   help="MicroLens titles CSV (videoID,title; no header): needed by --sampler title")
    p.add_argument("--sampler", default="mid5", help="key-frame sampler: mid5 | uniform | random | title | codec (default: %(default)s). codec: I-frames "
                   "always, then the candidates with the most codec motion + residual (falls back to uniform, noted in the "
                   "metadata, for intra-only videos)")
    p.add_argument("--n-frames", type=int, default=5, help="key frames per video, N (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sampler and of title corruptions (default: %(default)s)")
    p.add_argument("--clip-checkpoint", default=None,
                   help="local CLIP for --sampler title: a transformers CLIP directory, or an open_clip weights file")
    p.add_argument("--clip-model-name", default=None, help="open_clip architecture name for a weights file (e.g. ViT-B-32)")
    p.add_argument("--title-mode", default="clean", choices=["clean", "none", "noisy", "mismatched", "masked"],
                   help="Table 7 title setting for --sampler title (default: %(default)s)")
    p.add_argument("--noise-std", type=float, default=0.05, help="--title-mode noisy: std of the Gaussian noise per text-embedding component")
    p.add_argument("--mask-ratio", type=float, default=0.5, help="--title-mode masked: share of title words removed (default: %(default)s)")
    p.add_argument("--short-side", type=int, default=224, help="decode-time resize of the frames' short side, pixels (default: %(default)s)")
    p.add_argument("--decode-method", default="sequential", choices=["sequential", "seek"],
                   help="sequential (one decode pass, fast) or seek (per-frame seeks) (default: %(default)s)")


def register_prep_frames(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        PREP_FRAMES,
        help="videos -> chosen key frames (JPEG) + manifest.json",
        description="Decode each video with PyAV, take the middle frame of each of 100 equal time segments, "
        "choose N of them with a sampler and save them as <out>/<item>/<k>_<seconds>s.jpg, with manifest.json "
        "(timestamps, candidate indices, per-item failures). Unreadable files are listed, not fatal.",
        epilog="example: cva-rec prep-frames --videos ../shared/data/microlens-sample --sampler uniform --n-frames 8 --out frames/",
    )
    _add_selection_args(p)
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.set_defaults(func=run_prep_frames)
    return p


def register_extract_video(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        EXTRACT_VIDEO,
        help="videos -> key frames -> frozen frame encoder -> feature store",
        description="CVA Phase I: decode each video (100 segment middles), choose N key frames, encode them "
        "with a frozen frame encoder and write a float16 feature store with the frames' timestamps (s). "
        "Resumable: a killed run restarted with the same arguments continues and gives identical bytes. "
        "Per-item failures are stored in meta.json and printed at the end.",
        epilog="example: cva-rec extract-video --videos ../shared/data/microlens-sample "
        "--titles ../shared/data/microlens-sample/MicroLens-100k_title_en.csv --out stores/microlens-lite0-mid5",
    )
    _add_selection_args(p)
    p.add_argument("--out", required=True, type=Path, help="feature store directory to create")
    p.add_argument("--encoder", default="efficientnet_lite0",
                   help="frame encoder: efficientnet_lite0 | dinov2 | dinov3 | vit | clip | timm, or a video-level embedder: "
                   "gve | qwen2_vl (one vector per video/segment, Qwen2-VL family via transformers) (default: %(default)s)")
    p.add_argument("--checkpoint", default=None, help="local checkpoint of the frame encoder (all but efficientnet_lite0 need one)")
    p.add_argument("--segments", type=int, default=1,
                   help="--encoder gve | qwen2_vl (video-level VLM embedders): vectors per video, the chosen frames cut "
                   "into this many contiguous segments (default: %(default)s)")
    p.add_argument("--instruction", default=None,
                   help="--encoder gve | qwen2_vl: text after the video in the prompt (default: 'Represent the given video.')")
    p.add_argument("--model-name", default=None, help="timm model name (--encoder timm)")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32", "bfloat16"], help="storage dtype (default: %(default)s)")
    p.add_argument("--batch-items", type=int, default=8, help="videos per store write / resume checkpoint (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="frames per encoder forward (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store / discard an unfinished one")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--num-workers", type=int, default=0,
                   help="DataLoader worker processes that decode (PyAV) while the main process encodes; 0 = decode "
                   "in the main process (default: %(default)s)")
    g = p.add_argument_group("distributed extraction (shards; join them with cva-rec merge-stores)")
    g.add_argument("--shard-index", default=None,
                   help="extract only this shard (0-based) of --num-shards round-robin shares of the sorted video "
                   "list (videos I, I+C, ...), into <out>.shards/shard-IIIII-of-CCCCC (resumable per shard); 'auto' reads "
                   "SLURM_ARRAY_TASK_ID/COUNT, torchrun's RANK/WORLD_SIZE or srun's SLURM_PROCID/NTASKS")
    g.add_argument("--num-shards", type=int, default=None, help="number of shards (with an integer --shard-index)")
    t = p.add_argument_group("codec patch tokens (OneVision-Encoder sec. 2.1-2.2; needs --sampler codec)")
    t.add_argument("--patch-tokens", action="store_true",
                   help="write a token store: all patches of up to i-share of the budget of I-frames, then the most "
                   "salient patches of the other chosen frames, at --token-budget tokens per video")
    t.add_argument("--token-budget", type=int, default=256, help="tokens per video (default: %(default)s)")
    t.add_argument("--patch-ratio", type=float, default=0.25,
                   help="most patches kept per inter frame, as a share of its grid (paper: 3-25%%) (default: %(default)s)")
    t.add_argument("--i-frame-share", type=float, default=0.25,
                   help="share of the budget for whole I-frames, at least one (paper: 512 of 2048) (default: %(default)s)")
    p.set_defaults(func=run_extract_video)
    return p


def register(subparsers) -> None:
    """Both subcommands (for a single entry point)."""
    register_prep_frames(subparsers)
    register_extract_video(subparsers)


def settings(args) -> dict:
    """The options as the ``extract_video`` section of the config schema, checked there (one-line errors;
    prep-frames gives the selection options only, the others take their defaults)."""
    from data_prep.cli_common import checked_options

    return checked_options(args, "extract_video", f"{args.command} options")


def _config(args):
    from data_prep.extract import VideoExtractConfig

    settings(args)
    return VideoExtractConfig(
        sampler=args.sampler, n_frames=args.n_frames, encoder=getattr(args, "encoder", "efficientnet_lite0"),
        encoder_checkpoint=getattr(args, "checkpoint", None), encoder_model_name=getattr(args, "model_name", None),
        clip_checkpoint=args.clip_checkpoint, clip_model_name=args.clip_model_name, title_mode=args.title_mode,
        noise_std=args.noise_std, mask_ratio=args.mask_ratio, seed=args.seed, short_side=args.short_side,
        decode_method=args.decode_method, dtype=getattr(args, "dtype", "float16"),
        patch_tokens=getattr(args, "patch_tokens", False), token_budget=getattr(args, "token_budget", 256),
        patch_ratio=getattr(args, "patch_ratio", 0.25), i_frame_share=getattr(args, "i_frame_share", 0.25),
        video_segments=getattr(args, "segments", 1), instruction=getattr(args, "instruction", None),
    )


def _shard(args) -> tuple[int, int] | None:
    from cva_rec.errors import ConfigError
    from data_prep.shards import shard_from_env

    if args.shard_index is None:
        if args.num_shards is not None:
            raise ConfigError("--num-shards needs --shard-index (an integer, or auto)")
        return None
    if args.shard_index == "auto":
        index, count = shard_from_env()
        if args.num_shards is not None and args.num_shards != count:
            raise ConfigError(f"--num-shards {args.num_shards} but the launcher says {count} shards")
        return index, count
    if args.num_shards is None or not args.shard_index.isdigit():
        raise ConfigError("--shard-index takes an integer with --num-shards, or 'auto'")
    return int(args.shard_index), args.num_shards


def run_extract_video(args) -> int:
    from data_prep.extract import extract_video_features

    report = extract_video_features(
        args.videos, args.out, _config(args), titles_csv=args.titles, batch_items=args.batch_items,
        encoder_batch_size=args.batch_size, device=args.device, overwrite=args.overwrite, progress=not args.quiet,
        num_workers=args.num_workers, shard=_shard(args),
    )
    print(report.summary())
    if report.n_items and len(report.failures) >= report.n_items:  # a store of empty rows is not a result
        from cva_rec.errors import DataError

        raise DataError(f"every one of the {report.n_items} videos failed (first: {report.failures[0].get('reason')}); "
                        f"{report.path} holds no content (failures listed in its meta.json)")
    return 0


def run_prep_frames(args) -> int:
    from PIL import Image

    from cva_rec.io import atomic_write_json
    from cva_rec.plain_progress import progress_iter

    from data_prep.converters.titles import read_titles
    from data_prep.extract import KeyFrameChooser, list_videos
    from data_prep.frames import FrameError

    cfg = _config(args)
    videos = list_videos(args.videos)
    titles = read_titles(args.titles).titles if args.titles else None
    chooser = KeyFrameChooser(cfg, titles)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"config": asdict(cfg), "items": {}, "failures": []}
    start = time.perf_counter()
    for item_id, path in progress_iter(videos, desc="prep frames", unit="video"):
        cand = chooser.decode(item_id, path)
        if isinstance(cand, FrameError):
            manifest["failures"].append(asdict(cand))
            continue
        chosen = chooser.choose(cand)
        if isinstance(chosen, str):
            manifest["failures"].append({"item_id": item_id, "path": str(path), "reason": chosen})
            continue
        item_dir = args.out / item_id
        item_dir.mkdir(exist_ok=True)
        files = []
        for k, idx in enumerate(chosen):
            name = f"{k:02d}_{cand.timestamps[idx]:.3f}s.jpg"
            Image.fromarray(cand.frames[idx]).save(item_dir / name, quality=95)
            files.append(name)
        manifest["items"][item_id] = {
            "path": str(path), "candidates": len(cand), "chosen": [int(i) for i in chosen],
            "timestamps": [round(float(cand.timestamps[i]), 4) for i in chosen], "files": files, "notes": cand.notes,
        }
        if chooser.codec:  # what the codec sampler saw: mode, I-frame flags and saliency of the chosen frames
            manifest["items"][item_id].update(codec_mode=cand.mode, intra=[bool(cand.intra[i]) for i in chosen],
                                              saliency=[round(float(cand.saliency[i]), 4) for i in chosen])
    atomic_write_json(args.out / "manifest.json", manifest, ensure_ascii=False)
    print(f"prep-frames: {len(manifest['items'])} videos -> {args.out} in {time.perf_counter() - start:.1f} s, "
          f"{len(manifest['failures'])} failures")
    for f in manifest["failures"]:
        print(f"  FAILED {f['item_id']} ({f['path']}): {f['reason']}")
    return 0


def main(argv=None) -> int:
    """``python -m data_prep.cli_video <subcommand> ...`` with cva-rec's one-line error handling."""
    from data_prep.cli_common import standalone_main

    return standalone_main(register, "python -m data_prep.cli_video", argv)


if __name__ == "__main__":
    sys.exit(main())
