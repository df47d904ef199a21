"""Item encoders side by side: parameters, time, memory and accuracy, as ratios to ID-SASRec.

Part 1 (``--part ml100k``), RecBole's bundled ml-100k with REAL text-derived content (each
movie's title / year / genres embedded by all-MiniLM-L6-v2, the store ``cva-rec extract-text``
builds; made here if missing): for SASRec (GRU4Rec and NextItNet too with ``--all``) and ID,
Pooling, MLP, Perceiver IO, CVA M=1/4/8 and CVA ``attend: frames``, trains ``--epochs`` epochs
with the in-batch softmax (logQ) through cva_rec's own training loop (``run_experiment``) and
reports encoder and model parameters, seconds per training epoch, peak memory, test HR@10 /
NDCG@10, and the seconds to encode the whole catalogue for evaluation as a fraction of an
epoch. Each configuration runs in its own fresh child process (see "memory" below).

Part 2 (``--part microlens``), a MicroLens-100k-SHAPED feature store: 19,738 items x 5 frames x
384 (DINOv3 ViT-S/16 width), written with ``FeatureStoreWriter``. No real MicroLens features
exist on this machine, so its content is RANDOM (unit-norm Gaussian vectors): it is right for
time and memory (which depend on shapes only), meaningless for accuracy. The encoders alone, at
the paper's sizes (App. B / Table 11), run forward + backward + AdamW on the unique items of a
MicroLens-shaped batch (``--ml-batch-sequences`` sequences of ``--ml-seq-len`` ids drawn from a
Zipf-like popularity) and encode the whole catalogue; an "epoch" is ``--ml-steps-per-epoch``
such steps (default: 100,000 users / batch 60, one sequence per user, as the MicroLens benchmark).

Memory (why these numbers, not the process's peak RSS):
* CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``,
  as the paper measures it.
* CPU, part 1: each configuration is trained in a fresh child process and, just before the fit,
  the kernel's peak-RSS mark is reset (``echo 5 > /proc/self/clear_refs``); "peak MB" is the
  child's peak resident set during training + evaluation minus its resident set right before the
  fit, i.e. the memory this encoder's training and evaluation added on top of the loaded
  data, model and feature store. A whole-process RSS high-water mark would only grow from run to
  run and mostly measures Python + RecBole. It also includes allocator slack, so small
  differences (a few MB) are noise.
* CPU, both parts: "step MB" is the peak of live tensor memory during one training step
  (parameters, buffers incl. the frozen features, gradients, optimizer state, activations),
  tracked per tensor by ``torch.distributed._tools.mem_tracker.MemTracker``, the CPU analogue of
  ``max_memory_allocated`` (deterministic, no allocator slack).

CPU sizes: at the paper's sizes Perceiver IO (32 latents x width 256) needs ~40 s per
ml-100k training step on one core, so part 1 defaults to ``--scale cpu`` on CPU (same
architectures, latent width 64, 2 heads of 32, Perceiver IO 8 latents, MLP hidden 256) and
``--scale paper`` on CUDA. Part 2 always uses the paper's sizes. Times on a shared machine are
noisy; compare ratios measured in the same run only.

    cva-rec bench encoders                          # both parts, SASRec, ~10-15 min on 2 CPU cores
    cva-rec bench encoders -- --all --epochs 3      # + GRU4Rec and NextItNet
    cva-rec bench encoders -- --part microlens --device cuda
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from cva_rec.io import atomic_write_json, atomic_write_text
from cva_rec.benchmarks import bench_output, project_root

REPO = project_root()
ML100K_ITEMS = "recbole/dataset_example/ml-100k/ml-100k.item"
MICROLENS_ITEMS, MICROLENS_FRAMES, MICROLENS_DIM = 19_738, 5, 384

#: display name -> item_encoder config at the paper's sizes (App. B, Table 11)
PAPER_ENCODERS: Dict[str, Dict[str, Any]] = {
    "ID": {"name": "id"},
    "Pooling": {"name": "pooling"},
    "MLP": {"name": "mlp"},
    "Perceiver IO": {"name": "perceiver_io"},
    "CVA M=1": {"name": "cva", "depth": 1},
    "CVA M=4": {"name": "cva", "depth": 4},
    "CVA M=8": {"name": "cva", "depth": 8},
    "CVA M=4 frames": {"name": "cva", "depth": 4, "attend": "frames"},
}
#: opt-in rows (``--encoders``): CVA with R = 32 repeated latents, the paper's Table 18 / "w/o all cross attn"
#: row; same function as R = 1 (docs/encoders.md), so it shows what R costs
OPTIONAL_ENCODERS: Dict[str, Dict[str, Any]] = {"CVA M=4 R=32": {"name": "cva", "depth": 4, "repeats": 32}}
ALL_ENCODERS = {**PAPER_ENCODERS, **OPTIONAL_ENCODERS}
#: the same architectures narrowed so that every encoder trains in seconds per epoch on a CPU core
CPU_SIZES = {
    "mlp": {"hidden": 256},
    "perceiver_io": {"latent_dim": 64, "num_latents": 8, "self_heads": 2, "dim_head": 32, "query_dim": 64},
    "cva": {"latent_dim": 64, "heads": 2, "dim_head": 32},
}


def encoder_configs(scale: str, names: Optional[List[str]] = None) -> Dict[str, Dict[str, Any]]:
    """The requested encoders (default: every PAPER_ENCODERS row) at the given scale, in table order."""
    names = names or list(PAPER_ENCODERS)
    chosen = {k: v for k, v in ALL_ENCODERS.items() if k in names}
    if scale == "paper":
        return {k: dict(v) for k, v in chosen.items()}
    return {k: {**v, **CPU_SIZES.get(v["name"], {})} for k, v in chosen.items()}


# -- memory helpers ----------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; returns the current RSS in bytes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux / not permitted: the delta then over-counts, the table says so
        pass
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    return _status_kib("VmHWM") * 1024


def tracked_step_peak(step, modules, *optimizers) -> Optional[int]:
    """Peak live tensor bytes during one call of ``step()`` (CPU); None if the tracker is unavailable."""
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:
        return None
    tracker = MemTracker()
    tracker.track_external(*modules, *optimizers)
    with tracker:
        step()
    snap = tracker.get_tracker_snapshot("peak")
    return int(sum(v.get("Total", 0) for v in snap.values()))


def median_seconds(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- part 1: ml-100k, one configuration per child process ------------------------------------
def text_store(path: Path) -> Path:
    """The ml-100k text feature store, built once with ``cva-rec extract-text`` if missing."""
    if (path / "meta.json").is_file():
        return path
    import recbole

    from cva_rec.cli.main import main as cli_main

    items = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.item"
    print(f"== building the ml-100k text feature store -> {path}", flush=True)
    if cli_main(["extract-text", "--items", str(items), "--out", str(path)]) != 0:
        raise SystemExit("could not build the ml-100k text feature store")
    return path


def child_run(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Train one (backbone, encoder) configuration; runs inside a fresh process."""
    import torch

    import cva_rec  # noqa: F401  (RecBole shims)
    from cva_rec.backbones import item_encoder_of
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.run import build_module, count_parameters, load_content, run_experiment

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    cfg = load_config(None, spec["overrides"])
    data = build_data(cfg)
    content = load_content(cfg, data)
    module = build_module(cfg, data, content)
    cuda = spec["device"] == "cuda"
    baseline = {}

    def before_fit(_module):
        baseline["rss"] = reset_peak_rss()

    metrics = run_experiment(cfg, Path(spec["run_dir"]), enable_progress_bar=True, data=data, module=module, overwrite=True,
                             prepare=before_fit)
    peak_fit = metrics["peak_memory_bytes"] if cuda else peak_rss() - baseline["rss"]

    device = torch.device("cuda" if cuda else "cpu")
    module.to(device)
    encoder = item_encoder_of(module.model)
    encoder.eval()

    def encode_catalogue():
        encoder.invalidate_cache()
        with torch.no_grad():
            encoder.all_items()
        if cuda:
            torch.cuda.synchronize()

    catalogue_s = median_seconds(encode_catalogue)

    # one training step on a real batch: live-tensor peak on CPU, max_memory_allocated on CUDA
    module.train()
    batch = next(iter(RecBoleDataModule(data, cfg).train_dataloader())).to(device)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        module.loss(module.model, batch).backward()
        optimizer.step()

    step()  # optimizer state exists before the measured step, as in every step after the first
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        step_peak = int(torch.cuda.max_memory_allocated())
    else:
        step_peak = tracked_step_peak(step, [module], optimizer)
    epochs = metrics["train_epoch_seconds"]
    return {
        "model": cfg["model"]["name"],
        "encoder_parameters": count_parameters(encoder),
        "parameters": metrics["parameters"],
        # the first epoch includes one-time warm-up (allocator, lazy init); report the later ones when there are any
        "seconds_per_epoch": statistics.mean(epochs[1:] if len(epochs) > 1 else epochs),
        "epoch_seconds": epochs,
        "peak_bytes": int(peak_fit),
        "step_peak_bytes": step_peak,
        "hr@10": metrics["test"].get("hr@10"),
        "ndcg@10": metrics["test"].get("ndcg@10"),
        "catalogue_seconds": catalogue_s,
        "n_items": metrics["n_items"],
    }


def run_ml100k(args, store: Path) -> List[Dict[str, Any]]:
    encoders = encoder_configs(args.scale, args.encoders)
    names = list(encoders)
    models = ["SASRec", "GRU4Rec", "NextItNet"] if args.all else ["SASRec"]
    rows = []
    for model in models:
        for name in names:
            enc = encoders[name]
            tag = f"{model}-{name}".replace(" ", "_").replace("=", "")
            overrides = [
                f"model.name={model}", f"model.hidden_size={args.hidden_size}", f"model.embedding_size={args.hidden_size}",
                f"dataset.max_seq_length={args.max_seq_length}", "loss.name=inbatch_softmax",
                f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}", "train.early_stopping_patience=0",
                f"train.seed={args.seed}", "eval.popularity_buckets=0", f"output.dir={args.out / 'runs'}",
                *(f"item_encoder.{k}={json.dumps(v)}" for k, v in enc.items()),
            ]
            if enc["name"] != "id":
                overrides.append(f"content.store={store}")
            if args.device == "cuda":
                overrides += ["train.accelerator=gpu", "content.dtype=bfloat16"]
            spec = {"overrides": overrides, "run_dir": str(args.out / "runs" / tag), "device": args.device,
                    "threads": args.threads}
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"[{model} / {name}] FAILED:\n{proc.stderr[-3000:]}", flush=True)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["encoder"] = name
            rows.append(row)
            print(f"[{model} / {name}] {row['seconds_per_epoch']:.1f} s/epoch, HR@10 {row['hr@10']:.4f}, "
                  f"peak {row['peak_bytes'] / 2**20:.0f} MB ({time.perf_counter() - t0:.0f} s)", flush=True)
    return rows


# -- part 2: MicroLens-shaped store, encoders alone ----------------------------------------------
def microlens_shaped_store(path: Path, seed: int) -> Path:
    """19,738 items x 5 frames x 384, random unit-norm content, written with FeatureStoreWriter (once)."""
    if (path / "meta.json").is_file():
        return path
    import numpy as np

    from cva_rec.features.store import FeatureStoreWriter

    print(f"== writing a MicroLens-shaped feature store (random content) -> {path}", flush=True)
    rng = np.random.default_rng(seed)
    ids = [str(i) for i in range(1, MICROLENS_ITEMS + 1)]
    meta = {"content_source": "synthetic-random",
            "note": "MicroLens-100k SHAPE only (19,738 items x 5 frames x 384-d, DINOv3 ViT-S/16 width); "
                    "random unit-norm vectors, not real video features: for time/memory benchmarks only"}
    with FeatureStoreWriter(path, ids, MICROLENS_FRAMES, MICROLENS_DIM, "float16", meta, overwrite=True) as w:
        for start in range(0, len(ids), 4096):
            rows = np.arange(start, min(start + 4096, len(ids)))
            x = rng.standard_normal((len(rows), MICROLENS_FRAMES, MICROLENS_DIM)).astype(np.float32)
            x /= np.linalg.norm(x, axis=-1, keepdims=True)
            w.write(rows, x, np.full(len(rows), MICROLENS_FRAMES))
        w.finalize()
    return path


def run_microlens(args, store_path: Path) -> List[Dict[str, Any]]:
    import numpy as np
    import torch

    import cva_rec  # noqa: F401
    from cva_rec.encoders.registry import build_encoder
    from cva_rec.features import open_store
    from cva_rec.features.content import ItemContent

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    store = open_store(store_path)
    n = len(store) + 1  # row 0 = padding, as RecBole's internal ids
    feats = torch.zeros(n, store.max_frames, store.dim, dtype=torch.float16)
    feats[1:] = torch.from_numpy(np.array(store.features, dtype=np.float16))
    counts = torch.zeros(n, dtype=torch.long)
    counts[1:] = torch.from_numpy(np.asarray(store.num_frames, dtype=np.int64))
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float16
    content = ItemContent(feats.to(dtype), counts).to(device)

    # the unique items of MicroLens-shaped batches: sequences drawn from a Zipf-like popularity
    rng = np.random.default_rng(args.seed)
    pop = 1.0 / np.arange(1, n) ** 0.8
    pop /= pop.sum()
    batches = [torch.from_numpy(np.unique(rng.choice(np.arange(1, n), size=args.ml_batch_sequences * args.ml_seq_len, p=pop)))
               for _ in range(args.ml_steps + 1)]
    unique_per_step = statistics.mean(len(b) for b in batches)
    rows = []
    for name, enc_cfg in encoder_configs("paper", args.encoders).items():
        torch.manual_seed(args.seed)
        encoder = build_encoder(enc_cfg, n, args.ml_output_dim, content).to(device)
        params = [p for p in encoder.parameters() if p.requires_grad]
        # Pooling at 384 -> 384 has no parameters: its "step" is the forward pass alone
        optimizer = torch.optim.AdamW(params, lr=1e-3) if params else None

        def step(ids):
            out = encoder(ids.to(device))
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                out.square().mean().backward()
                optimizer.step()

        def sync():
            if args.device == "cuda":
                torch.cuda.synchronize()

        encoder.train()
        step(batches[0])  # warm-up: optimizer state, lazy initialisation
        sync()
        t0 = time.perf_counter()
        for ids in batches[1:]:
            step(ids)
        sync()
        step_s = (time.perf_counter() - t0) / args.ml_steps
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            step(batches[1])
            sync()
            peak = int(torch.cuda.max_memory_allocated())
        else:
            peak = tracked_step_peak(lambda: step(batches[1]), [encoder], *([optimizer] if optimizer else []))

        # catalogue encoding for evaluation (no_grad, eval mode, chunks of 4096 as all_items());
        # slow encoders on CPU stop after --catalogue-budget-s and are extrapolated linearly
        encoder.eval()
        ids = torch.arange(n, device=device)
        done, t0 = 0, time.perf_counter()
        with torch.no_grad():
            for part in ids.split(4096):
                encoder(part)
                done += len(part)
                if time.perf_counter() - t0 > args.catalogue_budget_s:
                    break
        sync()
        cat_s = (time.perf_counter() - t0) * n / done
        epoch_s = step_s * args.ml_steps_per_epoch
        rows.append({"encoder": name, "encoder_parameters": sum(p.numel() for p in encoder.parameters() if p.requires_grad),
                     "step_seconds": step_s, "epoch_seconds_est": epoch_s, "peak_bytes": peak,
                     "catalogue_seconds": cat_s, "catalogue_items_measured": done, "unique_items_per_step": unique_per_step})
        print(f"[MicroLens-shaped / {name}] {step_s * 1000:.0f} ms/step, peak {peak / 2**20:.0f} MB, "
              f"catalogue {cat_s:.2f} s" + ("" if done == n else f" (extrapolated from {done} items)"), flush=True)
        del encoder, optimizer
    return rows


# -- tables ------------------------------------------------------------------------------------
def _ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def ml100k_table(rows) -> List[str]:
    ref = next((r for r in rows if r["model"] == "SASRec" and r["encoder"] == "ID"), None)
    out = ["| backbone | encoder | enc. params | params | s/epoch | x ID | peak MB | x ID | step MB | x ID | HR@10 | x ID | NDCG@10 | x ID | catalogue s | % of epoch |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        g = (lambda k: _ratio(r[k], ref[k])) if ref else (lambda k: None)
        out.append(
            f"| {r['model']} | {r['encoder']} | {r['encoder_parameters']:,} | {r['parameters']:,} | {r['seconds_per_epoch']:.2f} | "
            f"{_fmt(g('seconds_per_epoch'), '.2f')} | {r['peak_bytes'] / 2**20:.1f} | {_fmt(g('peak_bytes'), '.2f')} | "
            f"{_fmt(r['step_peak_bytes'] and r['step_peak_bytes'] / 2**20, '.1f')} | {_fmt(g('step_peak_bytes'), '.2f')} | "
            f"{_fmt(r['hr@10'], '.4f')} | {_fmt(g('hr@10'), '.2f')} | {_fmt(r['ndcg@10'], '.4f')} | {_fmt(g('ndcg@10'), '.2f')} | "
            f"{r['catalogue_seconds']:.3f} | {100 * r['catalogue_seconds'] / r['seconds_per_epoch']:.1f} |")
    return out


def microlens_table(rows) -> List[str]:
    ref = next((r for r in rows if r["encoder"] == "ID"), None)
    out = ["| encoder | params | unique items/step | ms/step | x ID | est. s/epoch | peak MB | x ID | catalogue s | % of epoch |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(
            f"| {r['encoder']} | {r['encoder_parameters']:,} | {r['unique_items_per_step']:.0f} | {1000 * r['step_seconds']:.1f} | "
            f"{_fmt(ref and _ratio(r['step_seconds'], ref['step_seconds']), '.2f')} | {r['epoch_seconds_est']:.0f} | "
            f"{_fmt(r['peak_bytes'] and r['peak_bytes'] / 2**20, '.1f')} | {_fmt(ref and _ratio(r['peak_bytes'], ref['peak_bytes']), '.2f')} | "
            f"{r['catalogue_seconds']:.2f}{'' if r['catalogue_items_measured'] >= MICROLENS_ITEMS else '*'} | "
            f"{100 * r['catalogue_seconds'] / r['epoch_seconds_est']:.2f} |")
    return out


def targets(ml100k, microlens) -> List[str]:
    lines = []

    def pick(rows, enc, model="SASRec"):
        return next((r for r in rows if r["encoder"] == enc and r.get("model", model) == model), None)

    for model in dict.fromkeys(r["model"] for r in ml100k):  # each backbone against its own ID run
        c, i = pick(ml100k, "CVA M=4", model), pick(ml100k, "ID", model)
        if c and i:
            r = c["seconds_per_epoch"] / i["seconds_per_epoch"]
            lines.append(f"- ml-100k: CVA(M=4)-{model} s/epoch / ID-{model} = {r:.2f} (target <= 1.5): {'met' if r <= 1.5 else 'MISSED'}")
    cva = pick(ml100k, "CVA M=4")
    pio = pick(ml100k, "Perceiver IO")
    if cva and pio and cva["step_peak_bytes"] and pio["step_peak_bytes"]:
        r = cva["step_peak_bytes"] / pio["step_peak_bytes"]
        lines.append(f"- ml-100k: CVA(M=4) / Perceiver IO training-step tensor peak = {r:.2f} (target <= 0.5): {'met' if r <= 0.5 else 'MISSED'}")
    if cva:
        f = cva["catalogue_seconds"] / cva["seconds_per_epoch"]
        lines.append(f"- ml-100k: CVA(M=4) catalogue encoding = {100 * f:.1f}% of an epoch (target <= 10%): {'met' if f <= 0.1 else 'MISSED'}")
    mc, mi, mp = pick(microlens, "CVA M=4"), pick(microlens, "ID"), pick(microlens, "Perceiver IO")
    if mc and mp and mc["peak_bytes"] and mp["peak_bytes"]:
        r = mc["peak_bytes"] / mp["peak_bytes"]
        lines.append(f"- MicroLens-shaped: CVA(M=4) / Perceiver IO peak memory = {r:.3f} (target <= 0.5): {'met' if r <= 0.5 else 'MISSED'}")
    if mc:
        f = mc["catalogue_seconds"] / mc["epoch_seconds_est"]
        lines.append(f"- MicroLens-shaped: CVA(M=4) catalogue encoding = {100 * f:.2f}% of an epoch (target <= 10%): {'met' if f <= 0.1 else 'MISSED'}")
    if mc and mi:
        lines.append(f"- MicroLens-shaped: CVA(M=4) / ID encoder-only step time = {mc['step_seconds'] / mi['step_seconds']:.1f} "
                     "(encoder alone, no backbone: not the s/epoch target, which part 1 measures end to end)")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["both", "ml100k", "microlens"], default="both", help="which part to run (default both)")
    ap.add_argument("--all", action="store_true", help="part 1: also GRU4Rec and NextItNet (default SASRec only)")
    ap.add_argument("--encoders", nargs="+", metavar="NAME", choices=list(ALL_ENCODERS),
                    help=f"only these encoders (default: {', '.join(PAPER_ENCODERS)}; opt-in: {', '.join(OPTIONAL_ENCODERS)})")
    ap.add_argument("--epochs", type=int, default=2, help="part 1: training epochs per configuration (default 2)")
    ap.add_argument("--max-seq-length", type=int, default=10, help="part 1: most recent items per history (default 10)")
    ap.add_argument("--batch-size", type=int, default=1024, help="part 1: training batch (default 1024)")
    ap.add_argument("--hidden-size", type=int, default=64, help="part 1: backbone width = encoder output width (default 64)")
    ap.add_argument("--scale", choices=["cpu", "paper"], help="part 1 encoder sizes: cpu (narrowed, default on CPU) "
                    "or paper (App. B sizes, default on CUDA)")
    ap.add_argument("--store", type=Path, default=REPO / "data" / "stores" / "ml-100k-text",
                    help="ml-100k text feature store (built with cva-rec extract-text if missing)")
    ap.add_argument("--ml-store", type=Path, default=REPO / "data" / "stores" / "microlens-shaped-random",
                    help="part 2: the MicroLens-shaped random store (written once if missing)")
    ap.add_argument("--ml-batch-sequences", type=int, default=60, help="part 2: sequences per batch (paper: 60)")
    ap.add_argument("--ml-seq-len", type=int, default=11, help="part 2: ids per sequence (history + target; default 11)")
    ap.add_argument("--ml-steps", type=int, default=3, help="part 2: timed steps per encoder (after one warm-up step)")
    ap.add_argument("--ml-steps-per-epoch", type=int, default=1667,
                    help="part 2: steps in an epoch (default 1667 = 100,000 MicroLens users / batch 60)")
    ap.add_argument("--ml-output-dim", type=int, default=384, help="part 2: encoder output width (paper's query dim 384)")
    ap.add_argument("--catalogue-budget-s", type=float, default=20.0,
                    help="part 2: stop encoding the catalogue after this many seconds and extrapolate (marked *)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: peak memory = torch.cuda.max_memory_allocated")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--out", type=Path, default=bench_output("encoders"),
                    help="writes results.md and results.json here (default: runs/bench/encoders)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child_run(json.loads(args.child))))
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA device is visible to torch")
    args.scale = args.scale or ("paper" if args.device == "cuda" else "cpu")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    ml100k, microlens = [], []
    if args.part in ("both", "ml100k"):
        ml100k = run_ml100k(args, text_store(args.store.resolve()))
        write_results(args, argv, ml100k, microlens, t_start)  # kept even if part 2 fails
    if args.part in ("both", "microlens"):
        microlens = run_microlens(args, microlens_shaped_store(args.ml_store.resolve(), args.seed))
    write_results(args, argv, ml100k, microlens, t_start, echo=True)
    return 0


def write_results(args, argv, ml100k, microlens, t_start, echo=False) -> None:
    import torch

    host = f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores"
    md = [f"# Item-encoder benchmark ({host})", "", f"`{' '.join(['cva-rec bench encoders --', *(argv or sys.argv[1:])])}`", ""]
    if ml100k:
        md += [f"## ml-100k, real text-derived content (MiniLM, `{args.store}`), in-batch softmax, "
               f"{args.epochs} epochs, max_seq_length {args.max_seq_length}, batch {args.batch_size}, width {args.hidden_size}, "
               f"encoder sizes: {args.scale}", "",
               "peak MB: peak RSS growth during fit + test over the RSS before the fit, each configuration in a fresh "
               "process (CUDA: max_memory_allocated); step MB: peak live tensor memory of one training step "
               "(MemTracker; CUDA: max_memory_allocated). Ratios to ID-SASRec.", "", *ml100k_table(ml100k), ""]
    if microlens:
        md += [f"## MicroLens-shaped store ({MICROLENS_ITEMS:,} items x {MICROLENS_FRAMES} frames x {MICROLENS_DIM}; "
               "RANDOM content, no real MicroLens features here), encoders alone at the paper's sizes", "",
               f"forward + backward + AdamW on the unique items of a batch of {args.ml_batch_sequences} x {args.ml_seq_len} "
               f"Zipf-drawn ids; est. s/epoch = ms/step x {args.ml_steps_per_epoch} steps; peak MB = "
               + ("max_memory_allocated" if args.device == "cuda" else "peak live tensors (MemTracker) incl. the "
                  f"{MICROLENS_ITEMS * MICROLENS_FRAMES * MICROLENS_DIM * 2 / 2**20:.0f} MB frozen feature table")
               + "; * = catalogue time extrapolated from the items encoded within the time budget.", "",
               *microlens_table(microlens), ""]
    tg = targets(ml100k, microlens)
    md += ["## Targets", "", *tg, "", f"total bench time {time.perf_counter() - t_start:.0f} s"]
    text = "\n".join(md) + "\n"
    atomic_write_text(args.out / "results.md", text)
    atomic_write_json(args.out / "results.json", {"host": host, "args": {k: str(v) for k, v in vars(args).items()},
                                                  "ml100k": ml100k, "microlens": microlens, "targets": tg})
    if echo:
        print("\n" + text)
        print(f"wrote {args.out / 'results.md'} and results.json")


if __name__ == "__main__":
    raise SystemExit(main())
