"""Options shared by subcommands that take an experiment config, and options made from schema keys."""
from __future__ import annotations

import argparse
from typing import Any, Dict, Iterable, Mapping

import yaml

from cva_rec.config.keys import Key
from cva_rec.errors import ConfigError


def add_config_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", "-c", required=required, help="recipe YAML (see recipes/); missing keys take the defaults in docs/config.md")
    add_set_arg(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars (for logs / CI)")


def train_resume_argv(argv):
    """The command line that continues a stopped run (``train``, ``train-retriever``): the same one, without
    --overwrite (it would start again), with ``--set train.resume=true``."""
    out = [a for a in argv if a != "--overwrite"]
    return out if "train.resume=true" in out else [*out, "--set", "train.resume=true"]


def add_set_arg(parser: argparse.ArgumentParser, example: str = "--set train.epochs=3 --set item_encoder.depth=2") -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help=f"override one config key (repeatable), value parsed as YAML, e.g. {example}",
    )


def add_key_options(parser, section: str, keys: Mapping[str, Key], names: Iterable[str]) -> None:
    """One ``--kebab-case`` option per schema key, sugar for ``--set section.key=VALUE``: its help is the
    key's meaning and default; an option not given leaves the key to the config file / default."""
    for name in names:
        key = keys[name]
        flag = "--" + name.replace("_", "-")
        meaning = key.meaning.replace("%", "%%")
        shown = "null" if key.default is None else str(key.default).lower() if isinstance(key.default, bool) else key.default
        help_ = f"{meaning} (default: {shown}; {section}.{name})"
        if key.kind == "bool":
            parser.add_argument(flag, dest=f"{section}.{name}", action="store_true", default=argparse.SUPPRESS, help=help_)
        else:
            parser.add_argument(flag, dest=f"{section}.{name}", metavar=name.upper(), default=argparse.SUPPRESS, help=help_)


def given_keys(args: argparse.Namespace, section: str, keys: Mapping[str, Key]) -> Dict[str, Dict[str, Any]]:
    """``{section: {key: value}}`` of the options of :func:`add_key_options` given on the command line
    (values read as YAML, as ``--set`` reads them; strings stay strings, e.g. paths)."""
    from cva_rec.config.recipe_yaml import load_yaml

    out = {}
    for dest, raw in vars(args).items():
        sec, _, name = dest.partition(".")
        if sec != section or name not in keys:
            continue
        if isinstance(raw, str) and keys[name].kind != "str":
            try:
                raw = load_yaml(raw)
            except yaml.YAMLError:
                raise ConfigError(f"--{name.replace('_', '-')} {raw!r}: not a valid value for {section}.{name}") from None
        out[name] = raw
    return {section: out}
