"""``cva-rec merge-stores``: join the shard stores of a distributed extraction into one store.

Wire-up: entry point ``merge-stores = data_prep.cli_merge:register`` in the ``cva_rec.commands``
group; also ``python -m data_prep.cli_merge merge-stores ...``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

MERGE_STORES = "merge-stores"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        MERGE_STORES,
        help="validate the shard stores of one extraction and join them into one store",
        description="Checks that the shards (extract-video --shard-index/--num-shards) are all finished, none "
        "missing, none overlapping, all from the same extraction (same meta.json apart from their rows), then "
        "writes one store with the rows in the order of a single-process run: byte-identical to it. Resumable.",
        epilog="example: cva-rec merge-stores stores/microlens-lite0.shards --out stores/microlens-lite0",
    )
    p.add_argument("shards", nargs="+", type=Path,
                   help="a folder of shard stores (<out>.shards) and/or shard store folders")
    p.add_argument("--out", required=True, type=Path, help="the joined store to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from cva_rec.features.store import open_store
    from data_prep.merge_stores import merge_stores

    start = time.perf_counter()
    path = merge_stores(args.shards, args.out, overwrite=args.overwrite)
    store = open_store(path)
    print(f"merge-stores: {len(store)} items, {store.max_frames} x {store.dim} {store.dtype} -> {path} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv=None) -> int:
    from data_prep.cli_common import standalone_main

    return standalone_main(register, "python -m data_prep.cli_merge", argv)


if __name__ == "__main__":
    sys.exit(main())
