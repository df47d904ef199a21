"""Hand-written training loops (``tokenize --align``, GRDR co-training) fitted by a training run's Trainer.

:func:`fit_loop` runs a LightningModule over an :class:`EpochBatches` through
:func:`cva_rec.training.trainer.make_trainer`, the factory ``cva-rec train`` uses, so such a loop gets
what a training run gets: the progress bar, TensorBoard, ``checkpoints/last.ckpt`` (``resume``),
Lightning's signal handling, DDP through ``train.strategy`` and autograd anomaly detection off
(RecBole's sine.py switches it on process-wide at import; Lightning's fit switches it off while it
runs). These loops have no validation: no ``best.ckpt``, no early stopping.

Each epoch's batches come from generators seeded with ``(seed, epoch)`` (:func:`epoch_generators`),
so a resumed fit draws the batches an uninterrupted one would, and every DDP rank draws the same
list before taking its share.
"""
from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import torch

from cva_rec.errors import ConfigError


def epoch_seed(seed: int, epoch: int, *stream: int) -> int:
    """A seed for one epoch's draws of one ``stream`` (e.g. the DDP rank): the same key, the same seed."""
    return int(np.random.default_rng([int(seed), int(epoch), *map(int, stream)]).integers(2 ** 62))


def epoch_generators(seed: int, epoch: int, *stream: int) -> tuple[np.random.Generator, torch.Generator]:
    """Independent (numpy, torch CPU) generators of one epoch's draws of one stream."""
    return (np.random.default_rng(epoch_seed(seed, epoch, *stream, 0)),
            torch.Generator().manual_seed(epoch_seed(seed, epoch, *stream, 1)))


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochBatches:
    """The training batches of one epoch, ``draw(epoch_of())`` (a sequence) at the epoch's first step.

    A plain iterable rather than a DataLoader: Lightning leaves its order alone, and it takes nothing from
    the global torch RNG (dropout draws as in a plain loop). ``count``: batches per epoch. Under DDP each
    rank takes every world-th batch of the same list, wrapping round so that every rank steps
    ``ceil(count / world)`` times (DDP needs equal step counts)."""

    def __init__(self, draw: Callable[[int], Sequence], count: int, epoch_of: Callable[[], int]):
        self.draw, self.count, self.epoch_of = draw, int(count), epoch_of

    def __len__(self) -> int:
        return math.ceil(self.count / rank_and_world()[1])

    def __iter__(self):
        # a generator: the epoch's batches are drawn at its first step, not when Lightning calls iter(), which
        # on resuming comes before the trainer's epoch counter is restored (no prefetch: the length is known)
        batches = self.draw(self.epoch_of())
        rank, world = rank_and_world()
        if world == 1:
            yield from batches
        else:
            yield from (batches[(rank + k * world) % len(batches)] for k in range(len(self)))


def loop_config(device: str, epochs: int, grad_clip: Optional[float] = None,
                train: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The ``{"train": ...}`` that :func:`make_trainer` reads for a loop: its epochs and clipping, full
    precision (the loops were written and checked in float32), and the hardware of ``device``: ``cpu``,
    ``cuda:N`` (that GPU alone), or ``cuda`` with the recipe's ``train`` devices / strategy / nodes when
    its accelerator is a GPU one (DDP), one GPU otherwise."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown torch device {device!r} (e.g. cpu, cuda, cuda:1)") from None
    accelerator = "gpu" if dev.type == "cuda" else dev.type
    tr = dict(train or {})
    recipe_gpu = tr.get("accelerator") in ("gpu", "cuda", "auto") and accelerator == "gpu"
    same = recipe_gpu or tr.get("accelerator") == accelerator
    shared = same and dev.index is None
    return {"train": {
        "epochs": int(epochs), "accelerator": accelerator,
        "devices": tr.get("devices", 1) if shared else ([dev.index] if dev.index is not None else 1),
        "strategy": tr.get("strategy", "auto") if shared else "auto",
        "num_nodes": tr.get("num_nodes", 1) if shared else 1,
        "precision": "32-true", "fast": False, "deterministic": bool(tr.get("deterministic", False)),
        "grad_clip": grad_clip, "limit_train_batches": None, "early_stopping_patience": 0,
    }}


def fit_loop(module, batches: EpochBatches, cfg: Mapping[str, Any], run_dir: Optional[Path] = None,
             progress: bool = True, resume: bool = False):
    """Fit ``module`` on ``batches`` with the run's Trainer (``cfg`` from :func:`loop_config`) -> the trainer.

    ``run_dir``: where ``checkpoints/last.ckpt`` and ``tb/`` go (None: a temporary folder, removed after);
    ``resume``: continue from its ``last.ckpt`` when there is one."""
    from cva_rec.training.trainer import quiet_lightning

    quiet_lightning()
    if run_dir is None:
        with tempfile.TemporaryDirectory(prefix="cva_rec_loop_") as tmp:
            return _fit(module, batches, cfg, Path(tmp), progress, resume=False, kept=False)
    return _fit(module, batches, cfg, Path(run_dir), progress, resume, kept=True)


def _fit(module, batches: EpochBatches, cfg: Mapping[str, Any], run_dir: Path, progress: bool, resume: bool, kept: bool):
    from cva_rec.training.stops import stop_report
    from cva_rec.training.trainer import make_trainer

    trainer = make_trainer(cfg, run_dir, enable_progress_bar=progress, validate=False)
    last = run_dir / "checkpoints" / "last.ckpt"
    resume = resume and last.exists()
    with warnings.catch_warnings():
        if resume:  # the folder holds the checkpoint it resumes from, as it should
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        with stop_report(trainer, run_dir if kept else None):  # SIGTERM / Ctrl+C: one line, exit 143 / 130
            trainer.fit(module, train_dataloaders=batches, ckpt_path=str(last) if resume else None)
    return trainer
