"""YAML as people write recipes: ``1e-4`` and ``3E-4`` are numbers.

PyYAML implements YAML 1.1, whose float pattern needs a dot and a signed exponent, so ``lr: 1e-4``
loads as the *string* "1e-4" (YAML 1.2 reads it as a float). :class:`RecipeLoader` adds one
implicit resolver for the 1.2 forms; everything else is PyYAML's safe loader unchanged.
Every recipe, ``--set`` value and sweep grid is read through :func:`load_yaml`.
"""
from __future__ import annotations

import re
from typing import IO, Any, Union

import yaml


class RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` + exponent floats without a dot or sign (``1e-4``, ``3E-4``, ``2e5``, ``.5e-3``)."""


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(source: Union[str, IO]) -> Any:
    """``yaml.safe_load`` with :class:`RecipeLoader` (may raise ``yaml.YAMLError``)."""
    return yaml.load(source, Loader=RecipeLoader)  # noqa: S506 (a SafeLoader subclass)
