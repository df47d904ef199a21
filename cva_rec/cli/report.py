"""``cva-rec report RUNS_DIR``: results table (CVA Table 4 layout) and plots from finished runs.

``cva-rec report --bench DIR --out PAGE``: the results page (Markdown) and its plots from the figure JSON
files in DIR (``docs/results/``), see :mod:`cva_rec.report.results_page`.
"""
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
        epilog="examples:\n"
        "  cva-rec report runs/grid_id_backbones            # writes runs/grid_id_backbones/report/\n"
        "  cva-rec report --bench docs/results --out docs/results.md   # the published results page + plots",
    )
    p.add_argument("runs_dir", metavar="RUNS_DIR", nargs="?", help="folder holding run directories (searched recursively)")
    p.add_argument("--bench", metavar="DIR", help="render the results page from the figure JSON files in DIR instead "
                   "(every table with its command, machine, date and protocol version; plots written into DIR)")
    p.add_argument("--out", help="output folder (default: RUNS_DIR/report); with --bench the page's path "
                   "(default: DIR/../results.md)")
    p.add_argument("--title", help="report title (default: 'Results')")
    p.add_argument("--intervals", action="store_true",
                   help="add the column 'delta NDCG@10 [95%% CI]': each setting minus the ID setting, per-user NDCG@10 "
                   "averaged over seeds, with a paired bootstrap interval over users (the runs' per_user_test.npz); "
                   "~0 marks an interval that includes 0")
    p.add_argument("--paired-with", metavar="SETTING",
                   help="pair with this setting instead of the ID one (its Encoder label, e.g. 'pooling'); implies --intervals")
    p.set_defaults(func=run)


def run(args) -> int:
    from cva_rec.errors import ConfigError

    if args.bench:
        if args.runs_dir:
            raise ConfigError("give either RUNS_DIR or --bench DIR, not both")
        from pathlib import Path

        from cva_rec.report.results_page import write_page

        out = Path(args.out) if args.out else Path(args.bench).resolve().parent / "results.md"
        for path in write_page(args.bench, out):
            print(f"wrote {path}")
        return 0
    if not args.runs_dir:
        raise ConfigError("cva-rec report needs RUNS_DIR (or --bench DIR for the results page)")
    from cva_rec.report.build import build_report

    rep = build_report(args.runs_dir, args.out, args.title, paired_with=args.paired_with, intervals=args.intervals)
    print(rep.markdown_table)
    if args.intervals or args.paired_with:
        from cva_rec.report.bootstrap import MARKER_NOTE

        print(MARKER_NOTE)
    print(f"\n{len(rep.records)} runs, {len(rep.groups)} settings -> {rep.out_dir}/")
    for name in sorted(rep.files):
        print(f"  {name}")
    return 0
