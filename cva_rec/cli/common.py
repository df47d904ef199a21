"""Options shared by subcommands that take an experiment config."""
from __future__ import annotations

import argparse


def add_config_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", "-c", required=required, help="recipe YAML (see recipes/); missing keys take the defaults in docs/config.md")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one config key (repeatable), value parsed as YAML, e.g. --set train.epochs=3 --set item_encoder.depth=2",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars (for logs / CI)")
