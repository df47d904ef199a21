"""Standalone entry for the data_prep subcommand modules (``python -m data_prep.cli_video ...``).

The same subcommands are reached through ``cva-rec`` (entry points); run directly, they get the
same one-line error handling: a CvaRecError prints ``<command>: error: <message>`` and exits 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
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


def checked_options(args: argparse.Namespace, job: str, source: str) -> dict:
    """The parsed options that are keys of ``job``'s section of the config schema (``extract_text``,
    ``extract_video``), checked there: one-line errors naming the key; options not given take the
    schema's defaults; paths are given as strings."""
    from cva_rec.config.schema import JOBS, validate_section

    (keys,) = JOBS[job].own.values()
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k in keys}
    return validate_section(job, given, source)
