"""Full-ranking evaluation beside its arithmetic limit, on the same model, users and batches.

The limit of full ranking is one ``[users x d] @ [d x items]`` product and a top-k per batch: what
any evaluator has to do. cva_rec's evaluation does more: the padding and each user's history
masked, the target's rank counted with ties placed by a per-user draw, ranks collected and
deduplicated, metrics overall, per popularity level, inductive and warm / cold. This benchmark
times both, interleaved round by round in one process, and prints the ratio (goal: <= 2x).

Two views, both printed:

* ``ranking``: from the user states (computed once, untimed) to ranks. Limit = matmul into a
  reused buffer + ``topk``; project = the module's scoring (the backbone's item table, as
  ``full_sort_predict``) + finiteness check + :func:`target_ranks` + :class:`RankCollector` + metrics
  with every breakdown.
* ``end to end``: the backbone's forward pass included on both sides. Project = the
  LightningModule's own evaluation (``_start_eval``, ``_eval_step`` per batch, ``eval_results``),
  exactly what validation and test run; limit = forward + matmul + topk.

Shapes: ``ml-1m`` (``../shared/data``; skipped with a line when absent) and ``synth``: a
MicroLens-1M-shaped synthetic log (110,000 users, 10,000 items, 1M interactions; streaming engine)
with the MicroLens recipe's hidden size 384. Weights are the seeded initial ones: the cost of ranking
does not depend on what the model learned. CPU time (``process_time``) is printed beside wall time:
on a shared machine it is the steadier of the two. Minor page faults per pass show allocation churn.

    cva-rec bench eval                              # both shapes, JSON under runs/bench/eval/
    cva-rec bench eval -- --shapes synth --rounds 3 --device cuda
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

from cva_rec.benchmarks import project_root

SYNTH = {"users": 110_000, "items": 10_000, "interactions": 1_000_000}


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(fn: Callable[[], Any], sync: Callable[[], None]) -> Dict[str, float]:
    sync()
    f0, c0, t0 = _faults(), time.process_time(), time.perf_counter()
    fn()
    sync()
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "minor_faults": _faults() - f0}


def shape_config(shape: str, args) -> List[str]:
    common = [f"eval.batch_size={args.eval_batch}", "train.seed=2020", "eval.popularity_buckets=10",
              f"output.dir={args.out / 'runs'}", f"train.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}"]
    if shape == "ml-1m":
        return [f"dataset.data_path={args.data}", "dataset.name=ml-1m", "dataset.max_seq_length=50", "model.name=SASRec",
                "model.hidden_size=64", "model.embedding_size=64", *common]
    return [f"dataset.data_path={args.out / 'data'}", "dataset.name=synth-eval", "dataset.engine=streaming",
            "dataset.max_seq_length=10", "model.name=SASRec", "model.hidden_size=384", "model.embedding_size=384", *common]


def ensure_synth(work: Path, seed: int = 0) -> None:
    from cva_rec.data.synthetic import ensure_synthetic

    if ensure_synthetic(work, "synth-eval", SYNTH["users"], SYNTH["items"], SYNTH["interactions"], seed):
        print(f"  wrote the synthetic log {SYNTH}", flush=True)


def measure(shape: str, args) -> Dict[str, Any]:
    import torch

    from cva_rec.backbones import seq_output
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.evaluation import RankBuffers, RankCollector, all_finite, per_user_uniform, target_ranks
    from cva_rec.training.run import build_module

    torch.autograd.set_detect_anomaly(False)  # RecBole's import switches it on process-wide; Lightning's eval runs without
    cfg = load_config(None, shape_config(shape, args))
    data = build_data(cfg)
    device = torch.device(args.device)
    module = build_module(cfg, data).to(device).eval()
    batches = [tuple(x.to(device) if hasattr(x, "to") else x for x in b) for b in RecBoleDataModule(data, cfg).val_dataloader()]
    model, weight = module.model, module.model.item_embedding.weight
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    max_k = max(cfg["eval"]["topk"])
    seed = int(cfg["train"]["seed"])
    with torch.no_grad():
        states = [seq_output(model, b[0]) for b in batches]
    rows = max(len(b[1]) for b in batches)
    buf = torch.empty(rows, weight.shape[0], device=device)

    def limit_ranking():
        for u in states:
            torch.topk(torch.matmul(u, weight.t(), out=buf[:len(u)]), max_k, dim=1)

    def project_ranking():
        collector, buffers = RankCollector(), RankBuffers()
        for u, (_, users, targets, h_rows, h_items) in zip(states, batches):
            scores = torch.matmul(u, weight.t())
            if not all_finite(scores[:, 1:]):
                raise FloatingPointError("non-finite scores")
            ranks = target_ranks(scores, targets, (h_rows, h_items), tie_uniform=per_user_uniform(users, seed), buffers=buffers)
            collector.add(users, targets, ranks)
        module.collector = collector
        return module.eval_results(breakdown=True)

    def limit_end_to_end():
        for b in batches:
            u = seq_output(model, b[0])
            torch.topk(torch.matmul(u, weight.t(), out=buf[:len(u)]), max_k, dim=1)

    def project_end_to_end():
        module._start_eval()
        for i, b in enumerate(batches):
            module._eval_step(b, i)
        return module.eval_results(breakdown=True)

    sides = {"ranking": (limit_ranking, project_ranking), "end_to_end": (limit_end_to_end, project_end_to_end)}
    runs: Dict[str, Dict[str, List[Dict[str, float]]]] = {v: {"limit": [], "project": []} for v in sides}
    with torch.no_grad():
        project_ranking(), project_end_to_end()  # warm-up: first-touch of buffers, lazy inits
        for r in range(args.rounds):
            for view, (limit, project) in sides.items():
                order = (("limit", limit), ("project", project)) if r % 2 == 0 else (("project", project), ("limit", limit))
                for side, fn in order:
                    runs[view][side].append(timed(fn, sync))
        same = project_ranking() == project_end_to_end()  # the two project paths give the same metrics
    out: Dict[str, Any] = {"shape": shape, "users": sum(len(b[1]) for b in batches), "items": int(weight.shape[0] - 1),
                           "hidden": int(weight.shape[1]), "eval_batch": args.eval_batch, "device": str(device),
                           "batches": len(batches), "ranking_and_end_to_end_metrics_equal": same, "views": {}}
    for view, sides_runs in runs.items():
        med = {side: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for side, rs in sides_runs.items()}
        out["views"][view] = {**med, "ratio_wall": med["project"]["wall_s"] / med["limit"]["wall_s"],
                              "ratio_cpu": med["project"]["cpu_s"] / med["limit"]["cpu_s"]}
    return out


def main(argv=None) -> int:
    root = project_root()
    p = argparse.ArgumentParser(prog="cva-rec bench eval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", default=["ml-1m", "synth"], choices=["ml-1m", "synth"],
                   help="ml-1m (../shared/data) and/or the 110k-user x 10k-item synthetic shape (default both)")
    p.add_argument("--data", type=Path, default=root.parent / "shared" / "data", help="folder holding ml-1m/ (default ../shared/data)")
    p.add_argument("--out", type=Path, default=Path("runs/bench/eval"),
                   help="folder for the synthetic log, run scratch and eval_bench.json (default runs/bench/eval in the working directory)")
    p.add_argument("--eval-batch", type=int, default=4096, help="users per evaluation batch (eval.batch_size; default 4096, the schema's)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved limit / project rounds per view; medians are compared (default 3)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to score (default cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"machine": {"cpus": torch.get_num_threads(), "device": args.device,
                           "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None},
               "date": time.strftime("%Y-%m-%d"), "shapes": [],
               # through `cva-rec bench eval -- ARGS` argv is None and the arguments are in sys.argv
               "command": "cva-rec bench eval -- " + " ".join(sys.argv[1:] if argv is None else argv)}
    for shape in args.shapes:
        if shape == "ml-1m" and not (args.data / "ml-1m" / "ml-1m.inter").is_file():
            print(f"ml-1m: skipped, {args.data / 'ml-1m' / 'ml-1m.inter'} is absent (pass --data)", flush=True)
            continue
        if shape == "synth":
            ensure_synth(args.out / "data")
        print(f"{shape}: building data and model ...", flush=True)
        r = measure(shape, args)
        results["shapes"].append(r)
        print(f"{shape}: {r['users']} users x {r['items']} items, d={r['hidden']}, batch {r['eval_batch']} on {r['device']}", flush=True)
        for view, v in r["views"].items():
            print(f"  {view:10s}  limit {v['limit']['wall_s']:7.2f} s wall {v['limit']['cpu_s']:7.2f} s cpu | "
                  f"project {v['project']['wall_s']:7.2f} s wall {v['project']['cpu_s']:7.2f} s cpu "
                  f"({v['project']['minor_faults']} faults) | ratio {v['ratio_wall']:.2f}x wall, {v['ratio_cpu']:.2f}x cpu "
                  f"(goal <= 2x)", flush=True)
    path = args.out / "eval_bench.json"
    from cva_rec.io import atomic_write_json

    atomic_write_json(path, results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
