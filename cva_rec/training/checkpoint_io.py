"""Lightning checkpoints written and read through :mod:`cva_rec.io`.

Lightning's own ``TorchCheckpointIO`` writes through an fsspec transaction whose temporary
file lives in the system temp folder: when that is another file system, the "rename" is a
copy, and a full disk leaves a truncated ``best.ckpt``. Here a checkpoint is written like
every other file of a run (unique temp file beside the target, fsync, rename, fsync the
folder) and read with ``weights_only=True`` (a ``last.ckpt`` / ``best.ckpt`` in a shared run
folder is data, never code). Lightning's checkpoints hold only tensors, numbers, strings and
plain containers, so nothing is lost (tested).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from cva_rec.errors import CheckpointError
from cva_rec.io import atomic_torch_save, load_torch_file


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_torch_save(checkpoint, Path(path))

    def load_checkpoint(self, path, map_location=None, weights_only: Optional[bool] = None) -> dict[str, Any]:
        # weights_only is always True here, whatever the caller asks: checkpoints are user files
        return load_torch_file(Path(path), "checkpoint")


def load_checkpoint_into(module, path: str | os.PathLike) -> None:
    """Load a Lightning checkpoint's weights; unreadable or mismatched -> CheckpointError."""
    path = Path(path)
    state = load_torch_file(path, "checkpoint")  # weights only: a checkpoint someone hands over is data, not code
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointError(f"{path} is not a cva_rec/Lightning checkpoint (no state_dict)")
    missing, unexpected = module.load_state_dict(state["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")
