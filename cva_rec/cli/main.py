"""``cva-rec``: one entry point, one file per subcommand.

Built-in subcommands live in ``cva_rec/cli/``; packages (e.g. the offline ``data_prep``
pipeline, which cva_rec itself never imports) add theirs through the entry-point group
``cva_rec.commands``. Errors cva_rec raises on purpose print as one line (exit code 2).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import signal
import sys
import threading
from importlib.metadata import entry_points
from typing import List, Optional

from cva_rec.errors import CvaRecError, Stopped

BUILTIN = [
    "cva_rec.cli.train",
    "cva_rec.cli.evaluate",
    "cva_rec.cli.demo",
    "cva_rec.cli.bench",
    "cva_rec.cli.synth",
    "cva_rec.cli.tokenize",
    "cva_rec.cli.warmup",
    "cva_rec.cli.sweep",
    "cva_rec.cli.report",
    "cva_rec.cli.train_retriever",
    "cva_rec.cli.retrieve",
    "cva_rec.cli.hash_store",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cva-rec",
        description="Content-based item encoders (CVA, Perceiver IO, LUCID semantic IDs) for RecBole's "
        "SASRec / GRU4Rec / NextItNet / NARM / STAMP, trained with PyTorch Lightning.",
        epilog="Run `cva-rec <command> --help` for a command's options. Docs: docs/quickstart.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show full tracebacks and debug logs")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (repeatable), e.g. one that registers your own item encoder with "
                        "@register_encoder; packages can instead declare an entry point in group cva_rec.plugins")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for mod in BUILTIN:
        importlib.import_module(mod).register(sub)
    for ep in entry_points(group="cva_rec.commands"):
        try:
            ep.load()(sub)
        except ImportError as exc:  # an optional extra is not installed: say so in --help
            p = sub.add_parser(ep.name, help=f"(unavailable: {exc})")
            p.set_defaults(func=lambda args, exc=exc: _unavailable(exc))
    return parser


def _unavailable(exc):
    raise CvaRecError(f"this command needs an optional dependency: {exc}; install with `pip install -e .[content]`")


def load_plugins(modules) -> None:
    """Import user modules (``--plugin``) and installed ``cva_rec.plugins`` entry points, so that the
    encoders, losses or backbones they register can be named in a config."""
    for ep in entry_points(group="cva_rec.plugins"):
        ep.load()
    # CVA_REC_PLUGINS carries them into child processes (a sweep trains each run in its own process)
    inherited = [m for m in os.environ.get("CVA_REC_PLUGINS", "").split(",") if m]
    modules = list(dict.fromkeys([*inherited, *modules]))
    for name in modules:  # checked before they are handed to child processes
        if name.endswith(".py") or not all(part.isidentifier() for part in name.split(".")):  # a path, '', 'a..b'
            raise CvaRecError(f"--plugin {name!r}: expected a module name such as my_plugins.encoders, not a path; "
                              f"put its folder on PYTHONPATH (e.g. PYTHONPATH=. for ./my_plugins/encoders.py) and name the module")
    if modules:
        os.environ["CVA_REC_PLUGINS"] = ",".join(modules)
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                raise CvaRecError(f"--plugin {name}: no such module (is it on PYTHONPATH / installed?)") from None
            raise


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    _STOPPING.clear()
    previous = signal.signal(signal.SIGTERM, _raise_stopped) if _main_thread() else None
    try:
        load_plugins(args.plugin)
        from cva_rec.heap import keep_large_allocations

        keep_large_allocations()  # only with CVA_REC_MALLOC=reuse (docs/scale.md)
        return int(args.func(args) or 0)
    except (Stopped, KeyboardInterrupt) as exc:
        stop = exc if isinstance(exc, Stopped) else Stopped(signal.SIGINT)
        print(stop_line(args, list(sys.argv[1:] if argv is None else argv), stop), file=sys.stderr, flush=True)
        return 128 + stop.signum
    except CvaRecError as exc:
        if args.verbose:
            raise
        print(f"cva-rec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, read-only folder, no permission: wherever the OS refused
        from cva_rec.io import PATH_ERRNOS, describe_os_error

        if args.verbose or exc.errno not in PATH_ERRNOS:
            raise
        print(f"cva-rec {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_stopped(signum, frame):
    # SIGTERM (kill, SLURM, a CI timeout) ends the command like Ctrl+C does: through the code that reports
    # and cleans up, instead of Python's default of dying on the spot (or Lightning's exit 0). Once: a
    # second SIGTERM (schedulers repeat it) must not interrupt that cleanup
    if not _STOPPING:
        _STOPPING.append(signum)
        raise Stopped(signum)


_STOPPING: List[int] = []


def stop_line(args, argv: List[str], stop: Stopped) -> str:
    """One line: which signal stopped the command, where, what is saved and the command that resumes."""
    name = signal.Signals(stop.signum).name
    parts = [f"cva-rec {args.command}: stopped by {name}" + (f" {stop.where}" if stop.where else "")]
    if stop.saved:
        parts.append(f"saved: {stop.saved}")
    resume = getattr(args, "resume_argv", None)
    if resume is not None:
        parts.append(f"resume: {shlex.join(['cva-rec', *resume(argv)])}")
    return "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
