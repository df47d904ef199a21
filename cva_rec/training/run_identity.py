"""Which run a checkpoint belongs to: its config and its dataset, recorded in every checkpoint and checked on load.

Two checkpoints of one model on two datasets (or two seeds, two learning rates) have the same tensor
shapes, so loading one where the other was meant works and reports the wrong run's numbers. Every
checkpoint cva_rec writes (Lightning's ``best.ckpt`` / ``last.ckpt``, warm-up seeds) therefore records

* ``config``: the run's resolved config; compared through :func:`cva_rec.config.identity.differences`
  (the run-folder identity rule: keys that do not change what a run computes are left out, and
  what a resume may change, ``RESUME_MAY_CHANGE``), so the refusal names the first differing keys;
* ``dataset``: the dataset name, the item count and a sha256 of the item tokens in id order
  (:func:`dataset_fingerprint`): the same row of the item table means the same item;
* ``weights_sha256``: a sha256 of the weights as saved (:func:`weights_digest`): a file changed after it
  was written (a weight rounded or edited and saved back, with its identity) no longer matches it.

``evaluate``, ``retrieve`` (also with ``--checkpoint``), a warm-up stage reading the previous stage's
seed and a resumed ``train`` refuse a checkpoint of another run with one line naming what differs.
A checkpoint written before cva_rec recorded this is accepted with one warning line saying that it
cannot be checked (every earlier run folder would otherwise become unreadable); its shapes are
still checked.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from cva_rec.errors import CheckpointError, ConfigError

log = logging.getLogger("cva_rec")

#: where a checkpoint dict holds its identity
IDENTITY_KEY = "cva_rec_identity"


def dataset_fingerprint(data) -> Dict[str, Any]:
    """Name, item count and sha256 of the item tokens in id order (``[PAD]`` first) of ``data``."""
    tokens = [str(t) for t in data.item_tokens]
    digest = hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()
    return {"name": str(data.config["dataset"]), "n_items": len(tokens), "items_sha256": digest}


def weights_digest(state_dict: Mapping[str, Any]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of ``state_dict``'s tensors, in name order."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state_dict):
        value = state_dict[name]
        h.update(f"{name}\0".encode("utf-8"))
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}\0".encode("utf-8"))
            h.update(t.reshape(-1).view(torch.uint8).numpy())
        else:
            h.update(repr(value).encode("utf-8"))
    return h.hexdigest()


class RunIdentity:
    """The identity of one run (its config, its data): stamped into the checkpoints it writes, and
    required of the checkpoints it reads (a resume's ``last.ckpt``, the best one it tests)."""

    def __init__(self, cfg: Mapping[str, Any], data):
        self.cfg = cfg
        self.dataset = dataset_fingerprint(data)

    def record(self) -> Dict[str, Any]:
        """Plain values only (a checkpoint loads weights-only)."""
        return {"config": json.loads(json.dumps(dict(self.cfg), default=str)), "dataset": dict(self.dataset)}

    def stamp(self, checkpoint: Dict[str, Any]) -> Dict[str, Any]:
        record = self.record()
        if isinstance(checkpoint.get("state_dict"), Mapping):
            record["weights_sha256"] = weights_digest(checkpoint["state_dict"])
        checkpoint[IDENTITY_KEY] = record
        return checkpoint

    def check(self, state: Mapping[str, Any], path: str | Path, against: str = "this run", what: str = "checkpoint") -> None:
        check_identity(state, path, cfg=self.cfg, dataset=self.dataset, against=against, what=what)


def check_identity(state: Mapping[str, Any], path: str | Path, *, cfg: Optional[Mapping[str, Any]] = None,
                   dataset: Optional[Mapping[str, Any]] = None, against: str = "this run", what: str = "checkpoint") -> None:
    """Refuse ``state`` (a loaded checkpoint dict) when its recorded config differs from ``cfg`` or its
    dataset from ``dataset`` (a :func:`dataset_fingerprint`); either may be None (checked in another
    step: ``evaluate`` checks the config before it loads the data). ``against`` names where ``cfg``
    comes from. A checkpoint without a recorded identity is accepted with a warning (given once, in
    the step that checks the config)."""
    recorded = state.get(IDENTITY_KEY) if isinstance(state, Mapping) else None
    if recorded is None:
        if cfg is not None:
            log.warning("%s %s records no run identity (written by an older cva_rec): its dataset and config cannot "
                        "be checked, only its shapes", what, path)
        return
    if not isinstance(recorded, Mapping):
        raise CheckpointError(f"{what} {path} has an unreadable run identity ({IDENTITY_KEY} is not a mapping)")
    if "weights_sha256" in recorded:  # recorded since cva_rec hashes the weights it saves
        weights = state.get("state_dict")
        actual = weights_digest(weights) if isinstance(weights, Mapping) else "none"
        if actual != recorded["weights_sha256"]:
            raise CheckpointError(f"{what} {path} holds other weights than it was saved with (sha256 {actual[:12]}, "
                                  f"recorded {str(recorded['weights_sha256'])[:12]}): the file changed after it was "
                                  "written; refused")
    if dataset is not None:
        problem = _dataset_problem(recorded.get("dataset"), dataset)
        if problem:
            raise CheckpointError(f"{what} {path} was trained on another dataset ({problem}); refused: its scores "
                                  "would rank other items")
    if cfg is not None:
        problem = _config_problem(recorded.get("config"), cfg)
        if problem:
            raise CheckpointError(f"{what} {path} belongs to another run than {against} ({problem}); refused: "
                                  "use it with its own run's config")


def _dataset_problem(recorded: Any, here: Mapping[str, Any]) -> Optional[str]:
    if not isinstance(recorded, Mapping):
        return "its recorded dataset is unreadable"
    out = []
    if recorded.get("name") != here["name"]:
        out.append(f"dataset {recorded.get('name')!r} -> {here['name']!r}")
    if recorded.get("n_items") != here["n_items"]:
        out.append(f"items {recorded.get('n_items')} -> {here['n_items']}")
    if recorded.get("items_sha256") != here["items_sha256"]:
        out.append(f"item tokens sha256 {str(recorded.get('items_sha256'))[:12]} -> {here['items_sha256'][:12]}")
    return "; ".join(out) or None


def _config_problem(recorded: Any, cfg: Mapping[str, Any]) -> Optional[str]:
    from cva_rec.config.identity import RESUME_MAY_CHANGE, differences
    from cva_rec.config.schema import load_config

    if not isinstance(recorded, Mapping):
        return "its recorded config is unreadable"
    try:  # through the loader, as a run folder's config.yaml: keys added to cva_rec later get their defaults
        old = load_config(None, extra=recorded)
    except ConfigError as exc:
        return f"its recorded config is not a valid config here: {exc}"
    diffs = differences(old, cfg, ignore=RESUME_MAY_CHANGE)
    return "config differs: " + "; ".join(diffs) if diffs else None
