"""Code-quality benchmark: several `cva-rec tokenize` outputs side by side on one dataset split.

For each codes folder: the room codes' identity (unique fraction, collision rate, largest group,
levels) and how much they follow behaviour (``behaviour_agreement``): mutual information between
the level-1 codewords of consecutive training items, and the lift of sharing the level-1 / 1..2
prefix over chance, on the training next-item pairs and on the (previous item, held-out test item)
pairs of ``dataset.cold_items`` when the recipe has one. Ratios are to the first folder.

    cva-rec bench codes -- --recipe recipes/ml1m/cold_sasrec_id.yaml data/codes/A data/codes/B ...
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def cold_pairs(data) -> np.ndarray:
    """(previous item, held-out test item) for every user whose test item is held out."""
    if data.cold_items is None:
        return np.zeros((0, 2), dtype=np.int64)
    seqs, cold = data.sequences, data.cold_items.numpy()
    ends = seqs.indptr[1:]
    ok = (seqs.lengths >= 2)
    last, prev = seqs.items[ends[ok] - 1], seqs.items[ends[ok] - 2]
    return np.stack([prev, last], 1)[cold[last]]


def main(argv=None) -> int:
    import cva_rec  # noqa: F401
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from cva_rec.semantic_ids.alignment import training_pairs
    from cva_rec.semantic_ids.codes import SemanticCodes
    from cva_rec.semantic_ids.diagnostics import behaviour_agreement, code_diagnostics

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", required=True, help="a cva_rec recipe: its dataset (and dataset.cold_items) gives the pairs")
    p.add_argument("codes", nargs="+", help="folders written by cva-rec tokenize (codes.npz)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    data = build_data(load_config(args.recipe))
    held_out = None if data.cold_items is None else data.cold_items.numpy()
    train, cold = training_pairs(data.sequences, held_out), cold_pairs(data)
    print(f"{args.recipe}: {len(train)} training next-item pairs, {len(cold)} held-out test pairs "
          f"(data built in {time.perf_counter() - t0:.0f} s)")
    rows = []
    for folder in args.codes:
        codes = SemanticCodes.load(Path(folder) / "codes.npz").align(data.item_tokens)
        room = codes.room_codes
        diag = code_diagnostics(room, None, codes.n_codes)
        row = {"codes": folder, "levels": codes.levels, "unique": diag["unique_fraction"], "collision": diag["collision_rate"],
               "largest": diag["largest_collision_group"], "train": behaviour_agreement(room, train, codes.n_codes),
               "cold": behaviour_agreement(room, cold, codes.n_codes) if len(cold) else {}}
        rows.append(row)
    first = rows[0]["train"].get("mi_level1_bits") or float("nan")
    header = (f"{'codes':<58} {'L':>2} {'unique':>7} {'collis.':>7} {'max grp':>7} {'MI@1 bits':>9} {'x first':>7} "
              f"{'lift@1':>6} {'lift@2':>6} {'cold lift@1':>11} {'cold lift@2':>11}")
    print(header + "\n" + "-" * len(header))
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for r in rows:
        t, c = r["train"], r["cold"]
        print(f"{r['codes'][-58:]:<58} {r['levels']:>2} {r['unique']:>7.4f} {r['collision']:>7.4f} {r['largest']:>7} "
              f"{t['mi_level1_bits']:>9.4f} {t['mi_level1_bits'] / first:>7.2f} {fmt(t.get('lift@1')):>6} {fmt(t.get('lift@2')):>6} "
              f"{fmt(c.get('lift@1')):>11} {fmt(c.get('lift@2')):>11}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
