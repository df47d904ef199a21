"""The hyper-parameters RecBole declares for a model, typed, read from its own YAML without importing RecBole.

A backbone of this project that RecBole lacks (FMLP-Rec) declares its hyper-parameters in
``OWN_MODEL_DEFAULTS`` instead; they are typed the same way and handed to RecBole's ``Config`` as
that model's defaults (``cva_rec/data/dataset.py``).

The ``model`` section of a recipe is open: it accepts every key in
``recbole/properties/model/<name>.yaml``. Each key is typed like RecBole's default value (an
integer default takes integers, a float default numbers, a list default lists), and the keys
the backbones in ``cva_rec/backbones/`` read carry a range (``n_layers >= 1``, dropout in [0, 1),
...), so ``--set model.n_layers=0`` is one line at load, not a traceback inside RecBole.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any, Dict

from cva_rec.config.keys import Key, anything, choice, flag, integer, listof, number, text
from cva_rec.config.recipe_yaml import load_yaml

_DROPOUT = number(None, "dropout probability", ge=0.0, lt=1.0)
_COUNT = integer(None, "a size or count", min=1)

#: ranges of the keys RecBole's sequential models share; the default and meaning come from RecBole's YAML
RANGES: Dict[str, Key] = {
    **{k: _COUNT for k in ("n_layers", "n_heads", "num_layers", "inner_size", "hidden_size", "embedding_size",
                           "kernel_size", "block_num")},
    **{k: _DROPOUT for k in ("hidden_dropout_prob", "attn_dropout_prob", "dropout_prob")},
    "dropout_probs": listof(None, "dropout probabilities", _DROPOUT, min_items=1),
    "dilations": listof(None, "dilations of the residual blocks", _COUNT, min_items=1),
    "hidden_act": choice(None, "activation", ("gelu", "relu", "swish", "tanh", "sigmoid")),
    "layer_norm_eps": number(None, "layer-norm epsilon", gt=0.0),
    "initializer_range": number(None, "std of the normal initialisation", gt=0.0),
    "reg_weight": number(None, "L2 regularisation weight", ge=0.0),
}


#: the project's own backbones (RecBole has no YAML for them): their hyper-parameters and defaults
OWN_MODEL_DEFAULTS: Dict[str, Dict[str, Any]] = {
    # FMLP-Rec (cva_rec/backbones/fmlp_rec.py): the paper's released defaults (2 blocks, width 64, feed-forward
    # 4 x 64, dropout 0.5, GELU, LayerNorm eps 1e-12, N(0, 0.02) initialisation)
    "FMLPRec": {"n_layers": 2, "hidden_size": 64, "inner_size": 256, "hidden_dropout_prob": 0.5, "hidden_act": "gelu",
                "layer_norm_eps": 1e-12, "initializer_range": 0.02},
}


def _typed_like(default: Any) -> Key:
    if isinstance(default, bool):
        return flag(default, "")
    if isinstance(default, int):
        return integer(default, "")
    if isinstance(default, float):
        return number(default, "")
    if isinstance(default, str):
        return text(default, "")
    if isinstance(default, list):
        return listof(default, "")
    return anything(default, "")


def _recbole_yaml(model_name: str) -> Dict[str, Any]:
    try:
        path = Path(distribution("recbole").locate_file(f"recbole/properties/model/{model_name}.yaml"))
    except PackageNotFoundError:
        return {}
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as fh:
        return load_yaml(fh) or {}  # RecBole writes 1e-12 / 1e-5 (its own loader reads them as floats)


@lru_cache(maxsize=None)
def recbole_model_keys(model_name: str) -> Dict[str, Key]:
    """Key -> typed spec for every hyper-parameter RecBole (or this project) declares for ``model_name`` ({} when unknown)."""
    raw = dict(OWN_MODEL_DEFAULTS[model_name]) if model_name in OWN_MODEL_DEFAULTS else _recbole_yaml(model_name)
    raw.pop("loss_type", None)  # set by the loss, not the recipe
    return {k: (RANGES[k].but(default=v) if k in RANGES else _typed_like(v)) for k, v in raw.items()}
