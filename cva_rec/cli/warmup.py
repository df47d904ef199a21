"""``cva-rec warmup``: FLUID's staged warmup from a recipe (stage 0 ID -> + slice -> ID out -> + room)."""
from __future__ import annotations

import argparse

from cva_rec.cli.common import add_config_args


def register(sub) -> None:
    p = sub.add_parser(
        "warmup",
        help="staged warmup: ID model -> + slice LUCID -> ID phased out -> + room LUCID",
        description="Run the stages listed in warmup.stages, each a Lightning fit seeded by the previous stage's "
        "result: id (ID model), slice (ID + slice token), phase_out (the ID's weight decays to 0 by "
        "warmup.phase_out_schedule, then the ID table is deleted), room (room tables initialised from the warm "
        "slice tables), add_id_back (the check that the ID adds nothing). The recipe's item_encoder section "
        "(name: lucid) holds the codes and fusion options. Finished stages are skipped, so re-running the same "
        "command after a crash resumes at the stage (and epoch) where it stopped. Prints and writes a per-stage "
        "table of overall and cold-start metrics (stages.md, stages.json).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: cva-rec warmup -c recipes/ml1m/lucid_fluid.yaml\n"
        "         cva-rec warmup -c recipes/ml1m/lucid_fluid.yaml --set warmup.stages=[id,slice]   # stop after stage 1",
    )
    add_config_args(p, required=True)
    # finished stages are skipped and a stopped stage resumes from its last.ckpt: the same command continues
    p.set_defaults(func=run, resume_argv=list)


def run(args) -> int:
    from cva_rec.config.schema import load_config
    from cva_rec.report.stages import stage_table, write_stages_md
    from cva_rec.warmup import run_warmup

    cfg = load_config(args.config, args.overrides)
    result = run_warmup(cfg, progress=not args.no_progress)
    write_stages_md(result["out"])
    print("\n" + stage_table(result["stages"]) + f"\n\nstages: {result['out']}/stages.md")
    return 0
