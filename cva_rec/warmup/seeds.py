"""The weights one warm-up stage hands to the next (``<stage>/seed.pt``) and how a stage loads them."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch

from cva_rec.backbones import item_encoder_of
from cva_rec.config.schema import load_config
from cva_rec.errors import CheckpointError
from cva_rec.io import atomic_torch_save, load_torch_file
from cva_rec.training.run_identity import RunIdentity, check_identity

SEED_FILE = "seed.pt"


def save_seed(module, path: Path, identity: Optional[RunIdentity] = None) -> Path:
    """The stage's weights, with the stage's run identity (its config and data) when given."""
    state = {"format": "cva_rec.warmup_seed", "state_dict": module.state_dict()}
    return atomic_torch_save(identity.stamp(state) if identity is not None else state, path)


def load_seed(path: Path, dataset: Optional[Mapping[str, Any]] = None) -> Dict[str, torch.Tensor]:
    """A seed's weights; with ``dataset`` (this chain's :func:`dataset_fingerprint`) a seed trained on other
    data, or by another run than the stage folder it sits in (its ``config.yaml``), is refused."""
    state = load_torch_file(path, "warmup seed (has that stage finished?)")
    if not isinstance(state, dict) or state.get("format") != "cva_rec.warmup_seed":
        raise CheckpointError(f"{path} is not a cva_rec warmup seed")
    if dataset is not None:
        folder_cfg = path.parent / "config.yaml"
        cfg = load_config(folder_cfg) if folder_cfg.is_file() else None
        check_identity(state, path, cfg=cfg, dataset=dataset, against=f"its stage folder {path.parent}", what="warmup seed")
    return state["state_dict"]


def init_from_seed(module, seed: Mapping[str, torch.Tensor], allow_unused: tuple = ()) -> List[str]:
    """Load every seed tensor into ``module`` by name; returns the module's keys left at their init.

    A seed tensor the module has no place for is an error (a stage must not silently lose
    weights), except keys containing one of ``allow_unused``.
    """
    own = module.state_dict()
    unused = [k for k in seed if k not in own and not any(a in k for a in allow_unused)]
    if unused:
        raise CheckpointError(f"previous stage's weights do not fit this stage: unused {unused[:5]}")
    bad = [k for k in seed if k in own and own[k].shape != seed[k].shape]
    if bad:
        raise CheckpointError(f"previous stage's weights have other shapes: {bad[:5]}")
    module.load_state_dict({k: v for k, v in seed.items() if k in own}, strict=False)
    item_encoder_of(module.model).invalidate_cache()
    # a key that aliases a loaded tensor (shared_tables: room reads the slice tables) is not left at its init
    loaded = {own[k].data_ptr() for k in seed if k in own and own[k].numel()}
    return [k for k in own if k not in seed and not (own[k].numel() and own[k].data_ptr() in loaded)]


def id_parameter_keys(module) -> tuple:
    """The state-dict keys the item encoder's ID parameters have (or would have) in ``module``; none for an
    encoder that does not retire an ID (:class:`cva_rec.encoders.id_retirement.RetiresItemId`)."""
    from cva_rec.encoders.id_retirement import RetiresItemId

    encoder = item_encoder_of(module.model)
    if not isinstance(encoder, RetiresItemId):
        return ()
    prefix = next(name for name, sub in module.named_modules() if sub is encoder)
    return tuple(f"{prefix}.{n}" for n in encoder.id_parameter_names())
