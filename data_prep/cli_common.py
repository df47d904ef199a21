"""Standalone entry for the data_prep subcommand modules (``python -m data_prep.cli_video ...``).

The same subcommands are reached through ``cva-rec`` (entry points); run directly, they get the
same one-line error handling: a CvaRecError prints ``<command>: error: <message>`` and exits 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence


def standalone_main(register: Callable, prog: str, argv: Optional[Sequence[str]] = None) -> int:
    from cva_rec.errors import CvaRecError

    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CvaRecError as exc:
        print(f"{args.command}: error: {exc}", file=sys.stderr)
        return 2
