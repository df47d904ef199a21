"""``cva-rec sweep GRID.yaml``: run a grid of experiments (resumable), then write the report."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid of experiments (backbones x encoders x seeds x any key), skipping finished runs",
        description="Expand a grid file (base recipe + fixed overrides + named variants + a grid of "
        "section.key -> values; see docs/report.md) into runs, validate every config before training "
        "anything, train each run that has no metrics.json yet (a run folder without one is resumed from "
        "its last checkpoint), then write the report (cva-rec report) into OUT/report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: cva-rec sweep recipes/ml100k/grid_id_backbones.yaml --dry-run\n"
        "         cva-rec sweep recipes/ml100k/grid_id_backbones.yaml --out runs/grid   # re-run to resume",
    )
    p.add_argument("grid", metavar="GRID", help="grid YAML (e.g. recipes/ml100k/grid_id_backbones.yaml)")
    p.add_argument("--out", help="folder for the run directories (default: the grid's `out:`, else runs/<grid name>)")
    p.add_argument("--dry-run", action="store_true", help="list the runs with their status and overrides; train nothing")
    p.add_argument("--in-process", action="store_true",
                   help="train in this process instead of one child process per run (faster start, but the "
                   "reported peak memory is then the sweep's so far, not each run's)")
    p.add_argument("--no-report", action="store_true", help="do not write the report after the sweep")
    p.add_argument("--progress", action="store_true", help="show Lightning progress bars of each run")
    p.add_argument("--launcher", choices=["local", "submitit"], default="local",
                   help="local: one child process per run, one after another (default); submitit: one job per "
                   "unfinished run through submitit (SLURM, or its local executor), all submitted at once")
    p.add_argument("--cluster", default="auto", choices=["auto", "slurm", "local", "debug"],
                   help="submitit cluster (auto = SLURM when available) (default: %(default)s)")
    p.add_argument("--timeout-min", type=int, default=240, help="submitit: minutes per job (default: %(default)s)")
    p.add_argument("--slurm-partition", help="submitit: SLURM partition")
    p.add_argument("--gpus-per-node", type=int, help="submitit: GPUs per job")
    p.add_argument("--optuna", type=int, metavar="N", help="instead of the grid: Optuna search of the grid file's search: section "
                   "until N trials are finished (study in OUT/optuna.db; re-run with a larger N to add trials)")
    p.set_defaults(func=run)


def run(args) -> int:
    from cva_rec.jobs.sweep import expand, load_grid, run_sweep

    grid = load_grid(args.grid)
    if args.dry_run:
        runs = expand(grid, args.out)
        for i, r in enumerate(runs, 1):
            why = r.other_config()
            status = f"{r.status}, but holds another config: {why}" if why else r.status
            print(f"[{i}/{len(runs)}] {r.name} ({status}): {' '.join(r.overrides)}")
        todo = sum(not r.finished for r in runs)
        print(f"{len(runs)} runs, {todo} to train, into {runs[0].run_dir.parent if runs else '-'}")
        return 0
    if args.optuna is not None:
        from cva_rec.jobs.optuna_search import run_search

        result = run_search(grid, args.optuna, args.out, printer=lambda s: print(s, flush=True))
        out = Path(args.out) if args.out else grid.out or Path("runs") / grid.path.stem
        print(f"search: {len(result.trained)} trials scored, {len(result.failed)} failed")
        if not args.no_report and any(out.glob("trial-*/metrics.json")):
            from cva_rec.report.build import build_report

            rep = build_report(out, title=f"Search {grid.path.stem}")
            print(f"\n{rep.markdown_table}\n\nreport: {rep.files['results.md']}")
        return 1 if result.failed else 0
    cluster = None
    if args.launcher == "submitit":
        cluster = {"cluster": args.cluster, "timeout_min": args.timeout_min}
        if args.slurm_partition:
            cluster["slurm_partition"] = args.slurm_partition
        if args.gpus_per_node is not None:
            cluster["gpus_per_node"] = args.gpus_per_node
    result = run_sweep(grid, args.out, progress=args.progress, in_process=args.in_process, printer=lambda s: print(s, flush=True),
                       cluster=cluster)
    out = result.runs[0].run_dir.parent
    print(f"sweep: {len(result.trained)} trained, {len(result.skipped)} skipped (finished), {len(result.failed)} failed")
    for name, reason in result.failed:
        print(f"  failed: {name}: {reason}")
    if not args.no_report and (result.trained or result.skipped):
        from cva_rec.report.build import build_report

        rep = build_report(out, title=f"Sweep {grid.path.stem}")
        print(f"\n{rep.markdown_table}\n\nreport: {rep.files['results.md']}")
    return 1 if result.failed else 0
