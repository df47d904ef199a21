"""``cva-rec prep-microlens`` / ``cva-rec prep-shortvideo``: interaction files -> RecBole atomic files.

Wire-up: entry points ``prep-microlens = data_prep.cli_convert:register_prep_microlens`` and
``prep-shortvideo = data_prep.cli_convert:register_prep_shortvideo`` in the ``cva_rec.commands``
group. Also runnable alone: ``python -m data_prep.cli_convert {prep-microlens,prep-shortvideo} ...``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

PREP_MICROLENS = "prep-microlens"
PREP_SHORTVIDEO = "prep-shortvideo"


def _common(p: argparse.ArgumentParser, default_name: str) -> None:
    p.add_argument("--pairs", required=True, type=Path,
                   help="*_pairs.tsv (user<TAB>item item ..., time order) or *_pairs.csv (userID,videoID,timestamp in ms)")
    p.add_argument("--titles", type=Path, default=None, help="titles CSV (videoID,title; no header, no quoting) -> <name>.item")
    p.add_argument("--out", required=True, type=Path, help="data_path: files go to <out>/<name>/<name>.inter|.item")
    p.add_argument("--name", default=default_name, help="RecBole dataset name (default: %(default)s)")
    p.add_argument("--min-user-inter", type=int, default=5, help="keep users with at least this many interactions (default: %(default)s)")


def register_prep_microlens(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        PREP_MICROLENS, help="MicroLens pairs (.tsv/.csv) + titles -> RecBole .inter/.item",
        description="Convert MicroLens interactions to RecBole atomic files: .inter (user_id:token item_id:token "
        "timestamp:float; .tsv order becomes timestamps 0,1,2,...; .csv ms become seconds) and .item (title). "
        "Users with fewer than --min-user-inter interactions are dropped. Malformed lines are listed with line numbers.",
        epilog="example: cva-rec prep-microlens --pairs MicroLens-100k_pairs.tsv --titles MicroLens-100k_title_en.csv --out data/",
    )
    _common(p, "microlens")
    p.set_defaults(func=run_prep_microlens)
    return p


def register_prep_shortvideo(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        PREP_SHORTVIDEO, help="Short-Video pairs -> RecBole files with the CVA paper's App. E pruning",
        description="Same layouts as MicroLens; then App. E: drop videos seen fewer than --min-item-count times, "
        "then users with fewer than --min-user-inter interactions (one pass, as in the paper; --iterate for a fixed point).",
        epilog="example: cva-rec prep-shortvideo --pairs shortvideo_pairs.csv --out data/",
    )
    _common(p, "shortvideo")
    p.add_argument("--min-item-count", type=int, default=2, help="keep videos seen at least this often (default: %(default)s)")
    p.add_argument("--iterate", action="store_true", help="repeat the pruning until nothing changes")
    p.set_defaults(func=run_prep_shortvideo)
    return p


def register(subparsers) -> None:
    register_prep_microlens(subparsers)
    register_prep_shortvideo(subparsers)


def run_prep_microlens(args) -> int:
    from data_prep.converters.microlens import convert_microlens

    report = convert_microlens(args.pairs, args.out, titles_csv=args.titles, name=args.name, min_user_inter=args.min_user_inter)
    print(report.summary())
    return 0


def run_prep_shortvideo(args) -> int:
    from data_prep.converters.shortvideo import convert_shortvideo

    report = convert_shortvideo(args.pairs, args.out, titles_csv=args.titles, name=args.name,
                                min_item_count=args.min_item_count, min_user_inter=args.min_user_inter, iterate=args.iterate)
    print(report.summary())
    return 0


def main(argv=None) -> int:
    """``python -m data_prep.cli_convert <subcommand> ...`` with cva-rec's one-line error handling."""
    from data_prep.cli_common import standalone_main

    return standalone_main(register, "python -m data_prep.cli_convert", argv)


if __name__ == "__main__":
    sys.exit(main())
