"""Config string -> item encoder class. Users register their own with ``register_encoder``.

    from cva_rec.encoders import register_encoder, ItemEncoder

    @register_encoder("my_encoder")
    class MyEncoder(ItemEncoder):
        def __init__(self, n_items, output_dim, content, width: int = 128): ...
        def encode(self, item_ids): ...

Config keys under ``item_encoder`` (besides ``name``) are passed as keyword arguments;
keys the class does not accept are a ConfigError raised before training starts.
"""
from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional, Sequence

from cva_rec.config.components import ENCODER_CATALOG, declare_encoder_class
from cva_rec.encoders.base import ItemEncoder
from cva_rec.errors import ConfigError
from cva_rec.features.content import ItemContent
from cva_rec.registry import Registry, closest

#: a built-in encoder's options are declared (typed) in cva_rec/config/components.py; a plugin's are read from its signature
ENCODERS: Registry[type] = Registry("item encoder", on_register=declare_encoder_class)


def register_encoder(name: str):
    def _add(cls):
        if not (isinstance(cls, type) and issubclass(cls, ItemEncoder)):
            raise TypeError(f"{cls!r} must subclass cva_rec.encoders.ItemEncoder")
        return ENCODERS.register(name, cls)

    return _add


def encoder_options(name: str) -> dict[str, Any]:
    """The config options (and defaults) that encoder ``name`` accepts, from its declaration."""
    return {k: spec.default for k, spec in ENCODER_CATALOG.get(name).options.items()}


def build_encoder(cfg: Mapping[str, Any], n_items: int, output_dim: int, content: Optional[ItemContent] = None,
                  item_tokens: Optional[Sequence[str]] = None, trained_items=None) -> ItemEncoder:
    """``item_tokens`` (the dataset's original item ids by internal id) and ``trained_items``
    ([n_items] bool: the item occurs in training) reach encoders whose ``__init__`` accepts them,
    e.g. to align semantic codes and to leave never-trained table rows out; they are not config options."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if not name:
        raise ConfigError("item_encoder.name is required")
    cls = ENCODERS.get(name)
    options = encoder_options(name)
    for key in cfg:
        if key not in options:
            raise ConfigError(f"item_encoder {name!r} has no option {key!r}{closest(key, options)}; options: {', '.join(sorted(options)) or 'none'}")
    accepts = inspect.signature(cls.__init__).parameters
    if item_tokens is not None and "item_tokens" in accepts:
        cfg["item_tokens"] = list(item_tokens)
    if trained_items is not None and "trained_items" in accepts:
        cfg["trained_items"] = trained_items
    return cls(n_items, output_dim, content, **cfg)
