"""Whether two configs are the same experiment: the one rule that run folders, sweeps, Optuna, ``report``,
``bench idfree`` and ``warmup.reuse_run`` all apply.

A config's identity is the resolved config without

* the keys whose schema entry says ``identity=False`` (:class:`cva_rec.config.keys.Key`): keys that
  do not change what a run computes (``output.*``, ``train.resume``, ``train.num_workers``,
  ``eval.batch_size``, ...); ``train.epochs`` does change it and is part of the identity;
* item-encoder options at their declared default (a recipe that writes ``compose: concat`` out and
  one that leaves it unset are one config, and a folder made before an option existed keeps its
  identity);
* whatever the caller names in ``ignore`` (``section.key``, or ``section.*`` for a whole section):
  the dimension it compares across, e.g. ``report`` groups runs that differ only by
  ``train.seed``, and a resumed run may train more epochs (:data:`RESUME_MAY_CHANGE`).

A run folder adds to ``ignore`` the keys its job never reads (``Job.reads`` in :mod:`cva_rec.config.schema`,
:meth:`~cva_rec.config.schema.Job.unread`): a retriever run's config holds a whole data recipe, of which it
reads the data, content, seed and hardware keys only, so its model or eval sections are no part of it.

Reads declarations only (no torch): the config layer, not what it configures.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Iterable, List, Mapping

#: what continuing a run (``train.resume``) may change without making it another run's folder:
#: a resumed run may be given more epochs
RESUME_MAY_CHANGE = ("train.epochs",)
#: what ``report`` averages over: runs that differ only in these form one row
REPORT_GROUPS_ACROSS = ("train.seed",)

_UNSET = object()


def _ignored(sec: str, key: str, skip: set) -> bool:
    return f"{sec}.{key}" in skip or f"{sec}.*" in skip


def config_identity(cfg: Mapping[str, Any], ignore: Iterable[str] = ()) -> Dict[str, Any]:
    """The part of ``cfg`` that says which experiment it is (see the module docstring)."""
    from cva_rec.config.schema import non_identity_keys

    skip = set(non_identity_keys()) | set(ignore)
    out = {sec: {k: v for k, v in values.items() if not _ignored(sec, k, skip)} if isinstance(values, Mapping) else values
           for sec, values in cfg.items()}
    if isinstance(out.get("item_encoder"), dict):
        out["item_encoder"] = _without_encoder_defaults(out["item_encoder"])
    return {sec: values for sec, values in out.items() if values or f"{sec}.*" not in skip}


def config_id(cfg: Mapping[str, Any], ignore: Iterable[str] = ()) -> str:
    """A short stable hash of :func:`config_identity` (recorded in ``metrics.json`` and the lock file)."""
    text = json.dumps(config_identity(cfg, ignore), sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def same_experiment(a: Mapping[str, Any], b: Mapping[str, Any], ignore: Iterable[str] = ()) -> bool:
    """True when ``a`` and ``b`` compute the same thing (``ignore``: more ``section.key`` left out)."""
    ignore = tuple(ignore)
    return config_id(a, ignore) == config_id(b, ignore)


def differences(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = (), most: int = 3) -> List[str]:
    """``section.key old -> new`` for each identity key that differs (at most ``most``, then a count)."""
    ignore = tuple(ignore)
    a, b = config_identity(old, ignore), config_identity(new, ignore)
    out = []
    for sec in sorted(set(a) | set(b)):
        for key in sorted(set(a.get(sec, {})) | set(b.get(sec, {}))):
            if a.get(sec, {}).get(key, _UNSET) != b.get(sec, {}).get(key, _UNSET):
                out.append(f"{sec}.{key} {_shown(a, sec, key)} -> {_shown(b, sec, key)}")
    return out[:most] + ([f"... ({len(out) - most} more)"] if len(out) > most else [])


def _encoder_defaults(enc: Mapping[str, Any]) -> Dict[str, Any]:
    """Declared defaults of the options of the encoder ``enc`` names ({} for an unknown one)."""
    from cva_rec.config.components import ENCODER_CATALOG

    name = enc.get("name")
    if not isinstance(name, str) or name not in ENCODER_CATALOG:
        return {}
    return {k: spec.default for k, spec in ENCODER_CATALOG.get(name).options.items()}


def _without_encoder_defaults(enc: Dict[str, Any]) -> Dict[str, Any]:
    defaults = _encoder_defaults(enc)
    return {k: v for k, v in enc.items() if k not in defaults or v != defaults[k]}


def _shown(identity: Mapping[str, Any], sec: str, key: str) -> str:
    """A value as :func:`differences` names it: an item-encoder option left out is its default."""
    values = identity.get(sec, {})
    if key in values:
        return repr(values[key])
    defaults = _encoder_defaults(values) if sec == "item_encoder" else {}
    return f"{defaults[key]!r} (default)" if key in defaults else "<unset>"
