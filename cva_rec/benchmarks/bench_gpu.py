"""The benchmarks that need a GPU, in one command, for the day one is available.

Runs, one after the other, each in its own process and each writing the JSON the results page reads:

1. ``bench encoders --part microlens --device cuda``: the encoders alone at the CVA paper's sizes
   (CVA M=4 vs Perceiver IO: seconds per epoch and ``torch.cuda.max_memory_allocated``; the
   paper's anchor is 1131 s / 1.09 GB vs 1230 s / 6.87 GB per epoch on MicroLens-100K);
2. ``bench eval --device cuda``: full-ranking evaluation beside its arithmetic limit on the GPU;
3. ``bench fidelity`` with ``train.accelerator=gpu``: RecBole's Trainer vs the Lightning loop, metrics
   and seconds per epoch, on the GPU.

Outputs go under ``--out`` (default ``runs/bench/gpu/<name>/`` in the working directory). A step that
fails is reported and the next one still runs; the exit code is non-zero when any failed.
``--dry-run`` prints the commands without running them (and needs no GPU).

    cva-rec bench gpu
    cva-rec bench gpu -- --dry-run
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple


def steps(out: Path) -> List[Tuple[str, List[str]]]:
    bench = [sys.executable, "-m", "cva_rec.cli.main", "bench"]
    return [
        ("encoders", [*bench, "encoders", "--", "--part", "microlens", "--device", "cuda", "--out", str(out / "encoders")]),
        ("eval", [*bench, "eval", "--", "--device", "cuda", "--out", str(out / "eval")]),
        ("fidelity", [*bench, "fidelity", "--", "--accelerator", "gpu", "--out", str(out / "fidelity"),
                      "--json", str(out / "fidelity" / "fidelity_bench.json")]),
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="cva-rec bench gpu", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/bench/gpu"), help="output folder (default runs/bench/gpu)")
    p.add_argument("--only", nargs="+", choices=["encoders", "eval", "fidelity"], help="run only these steps")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    todo = [(n, c) for n, c in steps(args.out) if not args.only or n in args.only]
    if args.dry_run:
        for name, cmd in todo:
            print(f"{name}: {' '.join(cmd)}")
        return 0
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("bench gpu: no CUDA device is visible (torch.cuda.is_available() is false); "
                         "run it on a GPU machine, or `cva-rec bench gpu -- --dry-run` to see the commands")
    failed = []
    for name, cmd in todo:
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"bench gpu: failed steps: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
