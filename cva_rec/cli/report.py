"""``cva-rec report RUNS_DIR``: results table (CVA Table 4 layout) and plots from finished runs."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="build the results table (Markdown + CSV) and plots from run directories",
        description="Scan RUNS_DIR (recursively) for run directories with metrics.json and write a report: "
        "results.md / results.csv in the layout of the CVA paper's Table 4 (backbone, encoder, HR@10, NDCG@10, "
        "HR@20, NDCG@20, training seconds, peak memory, parameters; mean ± std over seeds), runs.csv (one row "
        "per run) and PNG plots: accuracy vs training time and vs peak memory, metrics per popularity level, "
        "and per-stage metrics of warmup runs (stages.json).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: cva-rec report runs/grid_id_backbones            # writes runs/grid_id_backbones/report/",
    )
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="folder holding run directories (searched recursively)")
    p.add_argument("--out", help="output folder (default: RUNS_DIR/report)")
    p.add_argument("--title", help="report title (default: 'Results')")
    p.set_defaults(func=run)


def run(args) -> int:
    from cva_rec.report.build import build_report

    rep = build_report(args.runs_dir, args.out, args.title)
    print(rep.markdown_table)
    print(f"\n{len(rep.records)} runs, {len(rep.groups)} settings -> {rep.out_dir}/")
    for name in sorted(rep.files):
        print(f"  {name}")
    return 0
