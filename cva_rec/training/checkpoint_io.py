"""Lightning checkpoints written and read through :mod:`cva_rec.io`.

Lightning's own ``TorchCheckpointIO`` writes through an fsspec transaction whose temporary
file lives in the system temp folder: when that is another file system, the "rename" is a
copy, and a full disk leaves a truncated ``best.ckpt``. Here a checkpoint is written like
every other file of a run (unique temp file beside the target, fsync, rename, fsync the
folder) and read with ``weights_only=True`` (a ``last.ckpt`` / ``best.ckpt`` in a shared run
folder is data, never code). Lightning's checkpoints hold only tensors, numbers, strings and
plain containers, so nothing is lost (tested).

Given the run's :class:`~cva_rec.training.run_identity.RunIdentity`, every checkpoint written records
it and every checkpoint Lightning reads back (a resume's ``last.ckpt``, the best one tested) must be
that run's; :func:`load_checkpoint_into` checks a checkpoint's identity and shapes before loading it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from cva_rec.errors import CheckpointError
from cva_rec.io import atomic_torch_save, load_torch_file
from cva_rec.training.run_identity import RunIdentity, check_identity


class AtomicCheckpointIO(TorchCheckpointIO):
    def __init__(self, identity: Optional[RunIdentity] = None):
        super().__init__()
        self.identity = identity

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        if self.identity is not None:
            self.identity.stamp(checkpoint)
        atomic_torch_save(checkpoint, Path(path))

    def load_checkpoint(self, path, map_location=None, weights_only: Optional[bool] = None) -> dict[str, Any]:
        # weights_only is always True here, whatever the caller asks: checkpoints are user files
        state = load_torch_file(Path(path), "checkpoint")
        if self.identity is not None:  # before Lightning puts its weights into the model
            self.identity.check(state, path, against="the run reading it")
        return state


def load_checkpoint_into(module, path: str | os.PathLike, *, cfg=None, dataset=None, against: str = "this run") -> None:
    """Load a Lightning checkpoint's weights; unreadable, of another run (``cfg`` / ``dataset`` given:
    :func:`~cva_rec.training.run_identity.check_identity`) or of other shapes -> one-line CheckpointError."""
    path = Path(path)
    state = load_torch_file(path, "checkpoint")  # weights only: a checkpoint someone hands over is data, not code
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a cva_rec/Lightning checkpoint (no state_dict)")
    if cfg is not None or dataset is not None:
        check_identity(state, path, cfg=cfg, dataset=dataset, against=against)
    check_fits(module, state["state_dict"], path)
    module.load_state_dict(state["state_dict"], strict=False)


def check_fits(module, state_dict: Mapping[str, Any], path: str | os.PathLike, what: str = "checkpoint") -> None:
    """One line when ``state_dict`` has keys or shapes ``module`` does not (torch's own error is a
    multi-line RuntimeError listing every tensor)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"{what} {path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    shapes = [(k, tuple(getattr(v, "shape", ())), tuple(own[k].shape)) for k, v in state_dict.items()
              if tuple(getattr(v, "shape", ())) != tuple(own[k].shape)]
    if shapes:
        key, theirs, ours = shapes[0]
        more = f" (and {len(shapes) - 1} more tensors)" if len(shapes) > 1 else ""
        raise CheckpointError(f"{what} {path} does not fit this model: {key} has shape {list(theirs)} in the checkpoint, "
                              f"{list(ours)} in the model its config builds{more}")
    # a floating weight given integers or booleans would be cast silently (values truncated): never
    # a checkpoint any precision writes
    retyped = [(k, v.dtype, own[k].dtype) for k, v in state_dict.items()
               if own[k].is_floating_point() and hasattr(v, "is_floating_point") and not v.is_floating_point()]
    if retyped:
        key, theirs, ours = retyped[0]
        raise CheckpointError(f"{what} {path} does not fit this model: {key} is {theirs} in the checkpoint, {ours} in the "
                              "model its config builds (a floating weight stored as another type)")
