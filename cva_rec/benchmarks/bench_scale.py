"""Data engines at scale: RecBole's datasets vs the streaming engine, side by side in one run.

For synthetic MicroLens-shaped logs (``cva-rec synth``: MicroLens-1M's users : items :
interactions ratio, 9.1 interactions per user, ~1 item per 100 interactions) of 0.1M, 1M and
10M interactions, each engine is measured in a FRESH child process (imports done before the
clock starts) with SASRec, max_seq_length 50, the in-batch softmax and batch 512:

* start-up s: from ``build_data`` to the first training batch in hand (data loading, filtering,
  splitting, histories, model, data loader). The streaming engine is run twice: "first" with an
  empty CSR cache, "second" reading it. RecBole has no cache: its second run repeats the first.
* steps/s: ``--steps`` training steps (forward, in-batch loss, backward, AdamW) after one
  warm-up step, with autograd anomaly detection off as under cva_rec's Lightning loop (RecBole's
  import switches it on), for both engines; "data ms/batch": 50 further batches fetched from the
  training loader without a step (the engine's own share of a step).
* eval users/s: ``--eval-batches`` batches of 256 validation users ranked against the whole
  catalogue with their history masked.
* peak RSS: the child's whole-process high-water mark (VmHWM): data + model + loop; "(anon)": the
  largest anonymous resident set sampled every 0.25 s by the parent (without file-backed pages:
  the memory-mapped cache and the libraries; short spikes can be missed); "RSS after data": the
  resident set right after ``build_data`` (imports + the data alone).

The machine this runs on is shared, so wall-clock figures move with other processes' load: the
CPU seconds of the child (``time.process_time``) are printed beside them (start-up CPU s,
steps per CPU second); compare ratios within one run.

A child that exceeds ``--rss-limit-gb`` or ``--timeout`` is stopped and reported as such (the
machine is shared: a 10M RecBole build needs several GB); for those, the RecBole figures at
10M are extrapolated on the straight line (fixed cost + cost per interaction) through 0.1M and 1M and
marked "extrapolated".
Prints the table and the streaming / RecBole ratios; writes ``--out`` (JSON) and a log-log plot
of peak memory and start-up against interactions (``--plot``).

    cva-rec bench scale                                  # 0.1M, 1M, 10M (RecBole 10M if it fits)
    cva-rec bench scale -- --sizes 0.1M 1M --steps 10
    cva-rec bench scale -- --equality bundled:ml-100k ../shared/data:ml-1m   # rows and metrics equal?

The fast path (``train.fast``) beside the exact path and RecBole's Trainer: ``cva-rec bench fast-path``.
"""
from __future__ import annotations

from cva_rec.benchmarks import bench_output, project_root

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

DATA_BATCHES = 50  # batches timed for the data side alone
SIZES = {"0.1M": 100_000, "1M": 1_000_000, "10M": 10_000_000}
ML1M = {"users": 1_000_000, "items": 91_402, "interactions": 9_095_620}
REPO = project_root()


def shape(interactions: int) -> Dict[str, int]:
    """MicroLens-1M's users and items per interaction."""
    return {"users": round(interactions * ML1M["users"] / ML1M["interactions"]),
            "items": round(interactions * ML1M["items"] / ML1M["interactions"]), "interactions": interactions}


def ensure_dataset(work: Path, label: str, seed: int) -> str:
    from cva_rec.data.synthetic import ensure_synthetic

    name, want = f"synth-{label}", shape(SIZES[label])
    t0 = time.perf_counter()
    if ensure_synthetic(work, name, want["users"], want["items"], want["interactions"], seed):
        print(f"  wrote {name}: {want} in {time.perf_counter() - t0:.0f} s", flush=True)
    return name


# -- child: one measurement -----------------------------------------------------------------------
def child(args) -> None:
    import contextlib

    import torch

    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.evaluation import RankCollector
    from cva_rec.training.run import build_module
    from cva_rec.training.trainer import precision_of

    torch.set_num_threads(1)
    # RecBole's sequential_recommender/sine.py switches autograd anomaly detection on at import; cva_rec
    # trains under Lightning, whose fit switches it off. Off here too, for both engines alike.
    torch.autograd.set_detect_anomaly(False)
    cfg = load_config(None, [
        f"dataset.data_path={args.work}", f"dataset.name={args.name}", f"dataset.engine={args.engine}",
        "dataset.max_seq_length=50", "model.name=SASRec", "loss.name=inbatch_softmax", "train.batch_size=512",
        "eval.batch_size=256", f"output.dir={args.work / 'runs'}", "train.seed=2020",
        f"eval.catalogue_chunk={args.catalogue_chunk}",
        # the fast path without torch.compile: its compile time and inductor's memory are not the engine's
        *(["train.fast=true", "train.compile=false"] if args.fast else []),
    ])
    # bf16 autocast where train.fast would train in bf16-mixed (as Lightning's precision plugin does)
    autocast = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision_of(cfg["train"]) == "bf16-mixed"
                else contextlib.nullcontext)
    t0, c0 = time.perf_counter(), time.process_time()
    data = build_data(cfg)
    rss_data = rss_mb(os.getpid())
    module = build_module(cfg, data)
    dm = RecBoleDataModule(data, cfg)
    batches = iter(dm.train_dataloader())
    batch = next(batches)
    startup, startup_cpu = time.perf_counter() - t0, time.process_time() - c0
    model = module.model
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)

    def step(b):
        opt.zero_grad()
        with autocast():
            loss = module.loss(model, b)
        loss.backward()
        opt.step()

    model.train()
    step(batch)  # warm-up
    t1, c1 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step(next(batches))
    steps_per_s, steps_per_cpu_s = args.steps / (time.perf_counter() - t1), args.steps / (time.process_time() - c1)
    t3 = time.perf_counter()  # the data side of a step alone: batches cut and handed over by the loader
    for _ in range(DATA_BATCHES):
        next(batches)
    data_ms = (time.perf_counter() - t3) / DATA_BATCHES * 1000

    model.eval()
    users = 0
    t2 = time.perf_counter()
    with torch.no_grad():
        module._start_eval()  # the LightningModule's own evaluation: heap released, then its eval step per batch
        for i, batch in enumerate(dm.val_dataloader()):
            if i == args.eval_batches:
                break
            module._eval_step(batch, i)
            users += len(batch[1])
        assert len(RankCollector.dedupe(*module.collector.tensors())[0]) == users
    users_per_s = users / (time.perf_counter() - t2)
    print("RESULT " + json.dumps({
        "startup_s": startup, "startup_cpu_s": startup_cpu, "steps_per_s": steps_per_s, "steps_per_cpu_s": steps_per_cpu_s,
        "data_ms_per_batch": data_ms, "eval_users_per_s": users_per_s, "rss_after_data_mb": rss_data,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "train_rows": int(dm.data.train.sample_size), "n_items": int(data.n_items - 1),
    }), flush=True)


# -- parent: children side by side ----------------------------------------------------------------
def rss_mb(pid: int, field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_child(args, engine: str, name: str, fast: bool = False) -> Dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--name", name, "--work", str(args.work),
           "--steps", str(args.steps), "--eval-batches", str(args.eval_batches),
           "--catalogue-chunk", str(args.catalogue_chunk), *(["--fast"] if fast else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    out: List[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    t0, worst, anon, stopped = time.perf_counter(), 0.0, 0.0, None
    while proc.poll() is None:
        worst = max(worst, rss_mb(proc.pid))
        anon = max(anon, rss_mb(proc.pid, "RssAnon"))
        if worst > args.rss_limit_gb * 1024:
            stopped = f"stopped: resident memory passed {args.rss_limit_gb} GB after {time.perf_counter() - t0:.0f} s"
        elif time.perf_counter() - t0 > args.timeout:
            stopped = f"stopped: still running after {args.timeout:.0f} s (resident {worst / 1024:.1f} GB)"
        if stopped:
            proc.kill()
            proc.wait()
            break
        time.sleep(0.25)
    reader.join(timeout=5)
    for line in out:
        if line.startswith("RESULT "):
            # sampled every 0.25 s: the peak without file-backed pages (the memory-mapped cache, libraries)
            return {**json.loads(line[7:]), "peak_anon_mb_sampled": anon}
    if stopped:
        return {"error": stopped, "stopped_rss_mb": worst, "stopped_after_s": time.perf_counter() - t0}
    return {"error": "failed: " + "".join(out[-5:]).strip()[-400:]}


def extrapolate(rows: Dict[str, Dict[str, Any]], key: str, labels: List[str], target: str) -> Optional[float]:
    """The straight line (fixed part + cost per interaction) through the two smallest measured sizes,
    evaluated at ``target``. Memory and start-up are a fixed cost (imports, model) plus a cost per
    interaction; a log-log line through totals would bend that fixed part into the slope and
    under-estimate the large size."""
    pts = [(SIZES[l], rows[l][key]) for l in labels if l in rows and isinstance(rows[l].get(key), (int, float))][:2]
    if len(pts) < 2:
        return None
    (x0, y0), (x1, y1) = pts
    return y0 + (y1 - y0) / (x1 - x0) * (SIZES[target] - x0)


# -- equality of the two engines on a real dataset ----------------------------------------------
FIELDS = ("user_id", "item_id", "item_id_list", "item_length")


def _all_rows(source):
    out = source.collate_fn(list(range(source.sample_size)))
    return out[0] if isinstance(out, tuple) else out


def equality(data_path: Optional[str], name: str, work: Path, max_len: int, batches: int) -> Dict[str, Any]:
    """Both engines on one dataset: every split row equal and in the same order, then a short
    SASRec run (``batches`` training batches, full ranking) per engine: metrics equal?"""
    import torch

    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from cva_rec.training.run import run_experiment

    base = [f"dataset.name={name}", f"dataset.max_seq_length={max_len}", "train.epochs=1", "train.early_stopping_patience=0",
            f"train.limit_train_batches={batches}", f"output.dir={work / 'equality'}"]
    if data_path:
        base.append(f"dataset.data_path={data_path}")
    data, seconds = {}, {}
    for engine in ("recbole", "streaming"):
        t0 = time.perf_counter()
        data[engine] = build_data(load_config(None, [*base, f"dataset.engine={engine}"]))
        seconds[engine] = time.perf_counter() - t0
    rows = {}
    for split in ("train", "valid", "test"):
        a, b = _all_rows(getattr(data["recbole"], split)), _all_rows(getattr(data["streaming"], split))
        rows[split] = {"rows": len(a), "identical_in_order": len(a) == len(b) and all(torch.equal(a[f], b[f]) for f in FIELDS)}
    metrics = {}
    for engine in ("recbole", "streaming"):
        cfg = load_config(None, [*base, f"dataset.engine={engine}", f"output.name={name}-{engine}"])
        m = run_experiment(cfg, enable_progress_bar=False, data=data[engine])
        metrics[engine] = {split: {k: v for k, v in m[split].items() if isinstance(v, float)} for split in ("valid", "test")}
    return {"dataset": name, "max_seq_length": max_len, "train_batches": batches, "build_data_s": seconds, "rows": rows,
            "metrics": metrics, "metrics_identical": metrics["recbole"] == metrics["streaming"]}


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def plot(results: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    series = [("recbole", "first", "RecBole", "tab:red"), ("streaming", "first", "streaming, first run", "tab:blue"),
              ("streaming", "second", "streaming, second run (cache)", "tab:cyan"),
              ("streaming-fast", "second", "streaming + train.fast, second run", "tab:green")]
    for ax, key, title in ((axes[0], "peak_rss_mb", "peak RSS (MB)"), (axes[1], "startup_s", "start-up to first batch (s)")):
        for engine, run, label, colour in series:
            if key == "peak_rss_mb" and engine == "recbole" and run == "second":
                continue  # RecBole's second run repeats its first
            xs, ys, ex, ey = [], [], [], []
            for lab, row in results["sizes"].items():
                r = row.get(engine, {}).get(run, {})
                if isinstance(r.get(key), (int, float)):
                    (ex if r.get("extrapolated") else xs).append(SIZES[lab])
                    (ey if r.get("extrapolated") else ys).append(r[key])
            ax.plot(xs, ys, "o-", color=colour, label=label)
            if ex:
                ax.plot([xs[-1], *ex] if xs else ex, [ys[-1], *ey] if ys else ey, "o--", color=colour, mfc="none",
                        label=f"{label} (extrapolated)")
            stop_key = {"peak_rss_mb": "stopped_rss_mb", "startup_s": "stopped_after_s"}[key]
            stops = [(SIZES[lab], row[engine][run][stop_key]) for lab, row in results["sizes"].items()
                     if run == "first" and stop_key in row.get(engine, {}).get(run, {})]
            if stops:
                ax.plot(*zip(*stops), "^", color=colour, ms=9, label=f"{label}: stopped here (a lower bound)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("interactions")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle("cva-rec bench scale: SASRec, max_seq_length 50, synthetic MicroLens-shaped logs")
    fig.tight_layout()
    from cva_rec.io import atomic_write

    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110), mode="wb")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES),
                   help="synthetic log sizes in interactions, MicroLens-1M's users:items ratio (default: all)")
    p.add_argument("--steps", type=int, default=20, help="timed training steps (default: %(default)s)")
    p.add_argument("--eval-batches", type=int, default=8, help="timed evaluation batches of 256 users (default: %(default)s)")
    p.add_argument("--work", type=Path, default=Path("/tmp/cva_rec_bench_scale"), help="datasets and caches (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic logs (default: %(default)s)")
    p.add_argument("--rss-limit-gb", type=float, default=8.0, help="stop a child above this resident memory (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=600.0, help="stop a child after this many seconds (default: %(default)s)")
    p.add_argument("--catalogue-chunk", type=int, default=0, metavar="N",
                   help="eval.catalogue_chunk of every run: rank against the catalogue N items at a time (0 = all at once, "
                   "the default of cva-rec train)")
    p.add_argument("--fast", action="store_true",
                   help="also run the streaming engine with train.fast (SDPA, quantized dropout, bf16 autocast where the CPU "
                   "has it; no torch.compile): row 'streaming-fast', a second run on the warm cache")
    p.add_argument("--recbole-max", default="10M", choices=list(SIZES), help="largest size RecBole is tried at (default: %(default)s)")
    p.add_argument("--out", type=Path, default=bench_output("scale", "scale_bench.json"),
                   help="results JSON (default: runs/bench/scale/scale_bench.json; the published one is docs/results/scale_bench.json)")
    p.add_argument("--plot", type=Path, default=bench_output("scale", "scale_curves.png"),
                   help="log-log plot (default: runs/bench/scale/scale_curves.png; the published one is docs/results/scale_curves.png)")
    p.add_argument("--report-only", action="store_true", help="re-print and re-plot --out without measuring")
    p.add_argument("--equality", nargs="+", metavar="DATA_PATH:NAME",
                   help="instead: check both engines give identical rows and metrics on these datasets "
                   "(e.g. bundled:ml-100k ../shared/data:ml-1m), SASRec length 50")
    p.add_argument("--equality-batches", type=int, default=20, help="training batches of the --equality runs (default: %(default)s)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.report_only:
        return finish(json.loads(args.out.read_text()), args)
    if args.equality:
        out = [equality(path if path != "bundled" else None, name, args.work, 50, args.equality_batches)
               for path, name in (spec.split(":", 1) for spec in args.equality)]
        for r in out:
            print(json.dumps(r, indent=1))
            counts = ", ".join(f"{split} {v['rows']}" for split, v in r["rows"].items())
            same_rows = all(v["identical_in_order"] for v in r["rows"].values())
            print(f"{r['dataset']}: rows identical and in order: {same_rows} ({counts}); metrics identical: "
                  f"{r['metrics_identical']}; build_data s: RecBole {r['build_data_s']['recbole']:.1f}, "
                  f"streaming (first) {r['build_data_s']['streaming']:.1f}")
        return 0

    import shutil

    from cva_rec.io import atomic_write_json

    args.work.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Any] = {"steps": args.steps, "eval_batches": args.eval_batches, "sizes": {}}
    order = list(SIZES)
    for label in [s for s in order if s in args.sizes]:
        print(f"[{label}] {shape(SIZES[label])}", flush=True)
        name = ensure_dataset(args.work, label, args.seed)
        shutil.rmtree(args.work / "runs" / ".sequence_cache", ignore_errors=True)  # the first run starts cold
        row: Dict[str, Any] = {"shape": shape(SIZES[label])}
        row["streaming"] = {"first": run_child(args, "streaming", name), "second": run_child(args, "streaming", name)}
        if args.fast:
            row["streaming-fast"] = {"second": run_child(args, "streaming", name, fast=True)}
        if order.index(label) <= order.index(args.recbole_max):
            first = run_child(args, "recbole", name)
            row["recbole"] = {"first": first}
            if "error" not in first:
                row["recbole"]["second"] = (run_child(args, "recbole", name) if SIZES[label] <= 1_000_000
                                            else {**first, "not_rerun": "RecBole has no cache: a second run repeats the first"})
        results["sizes"][label] = row
        print(json.dumps(row, indent=1), flush=True)
        atomic_write_json(args.out, results)
    return finish(results, args)


def finish(results: Dict[str, Any], args) -> int:
    """Extrapolate RecBole where it did not run or fit (marked), print the table and ratios, plot."""
    from cva_rec.io import atomic_write_json

    order = list(SIZES)
    for row in results["sizes"].values():  # --report-only: extrapolate again from the measured rows
        rb = row.get("recbole", {}).get("first")
        if rb and rb.get("extrapolated"):
            row["recbole"] = {"first": {"error": rb.get("why", "not run"),
                                        **{k: rb[k] for k in ("stopped_rss_mb", "stopped_after_s") if k in rb}}}
    measured = {l: r["recbole"]["first"] for l, r in results["sizes"].items() if "error" not in r.get("recbole", {}).get("first", {"error": 1})}
    for label, row in results["sizes"].items():
        rb = row.get("recbole", {}).get("first")
        if rb is None or "error" in rb:
            est = {k: extrapolate(measured, k, order, label) for k in ("peak_rss_mb", "startup_s", "startup_cpu_s", "rss_after_data_mb")}
            if all(v is not None for v in est.values()):
                row.setdefault("recbole", {})["first"] = {**est, "extrapolated": True, "why": (rb or {}).get("error", "not run"),
                                                          **{k: rb[k] for k in ("stopped_rss_mb", "stopped_after_s") if rb and k in rb}}
                row["recbole"]["second"] = dict(row["recbole"]["first"])
    atomic_write_json(args.out, results)

    print("\nsize  engine         run     start-up s  (CPU s)  RSS after data MB  peak RSS MB  (anon)  steps/s  (per CPU s)  data ms/batch  eval users/s")
    for label, row in results["sizes"].items():
        for engine in ("recbole", "streaming", "streaming-fast"):
            for run in ("first", "second"):
                r = row.get(engine, {}).get(run)
                if not r:
                    continue
                if "error" in r:
                    print(f"{label:5} {engine:14} {run:7} {r['error']}")
                    continue
                tag = "  (extrapolated)" if r.get("extrapolated") else ""
                print(f"{label:5} {engine:14} {run:7} {fmt(r.get('startup_s'), '10.1f')}  {fmt(r.get('startup_cpu_s'), '7.1f')}  "
                      f"{fmt(r.get('rss_after_data_mb'), '17.0f')}  {fmt(r.get('peak_rss_mb'), '11.0f')}  {fmt(r.get('peak_anon_mb_sampled'), '6.0f')}  "
                      f"{fmt(r.get('steps_per_s'), '7.2f')}  {fmt(r.get('steps_per_cpu_s'), '11.2f')}  {fmt(r.get('data_ms_per_batch'), '13.1f')}  "
                      f"{fmt(r.get('eval_users_per_s'), '12.0f')}{tag}")
    print("\nratios streaming / RecBole (targets at 10M: memory <= 0.1x, second-run start-up >= 10x faster, steps/s >= 1.0x)")
    for label, row in results["sizes"].items():
        rb, st1, st2 = (row.get(e, {}).get(r, {}) for e, r in (("recbole", "first"), ("streaming", "first"), ("streaming", "second")))
        if "error" in rb or "error" in st1 or not rb:
            continue

        def ratio(a, b):
            return None if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b else a / b

        tag = " (RecBole extrapolated)" if rb.get("extrapolated") else ""
        print(f"{label:5} peak memory {fmt(ratio(st1.get('peak_rss_mb'), rb.get('peak_rss_mb')), '.3f')}x "
              f"(second run {fmt(ratio(st2.get('peak_rss_mb'), rb.get('peak_rss_mb')), '.3f')}x; after data {fmt(ratio(st1.get('rss_after_data_mb'), rb.get('rss_after_data_mb')), '.3f')}x)   "
              f"start-up speed-up first {fmt(ratio(rb.get('startup_s'), st1.get('startup_s')), '.1f')}x, "
              f"second {fmt(ratio(rb.get('startup_s'), st2.get('startup_s')), '.1f')}x "
              f"(CPU s: {fmt(ratio(rb.get('startup_cpu_s'), st2.get('startup_cpu_s')), '.1f')}x)   "
              f"steps/s {fmt(ratio(st1.get('steps_per_s'), rb.get('steps_per_s')), '.2f')}x "
              f"(per CPU s: {fmt(ratio(st1.get('steps_per_cpu_s'), rb.get('steps_per_cpu_s')), '.2f')}x)   "
              f"data ms/batch {fmt(ratio(st1.get('data_ms_per_batch'), rb.get('data_ms_per_batch')), '.2f')}x   "
              f"eval users/s {fmt(ratio(st1.get('eval_users_per_s'), rb.get('eval_users_per_s')), '.2f')}x{tag}")
        fast = row.get("streaming-fast", {}).get("second", {})
        if fast and "error" not in fast:
            print(f"{'':5} with train.fast: peak memory {fmt(ratio(fast.get('peak_rss_mb'), rb.get('peak_rss_mb')), '.3f')}x   "
                  f"steps/s {fmt(ratio(fast.get('steps_per_s'), rb.get('steps_per_s')), '.2f')}x "
                  f"(per CPU s: {fmt(ratio(fast.get('steps_per_cpu_s'), rb.get('steps_per_cpu_s')), '.2f')}x){tag}")
    plot(results, args.plot)
    print(f"\nwrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
