"""Collaborative alignment before quantisation (``cva-rec tokenize --align RECIPE``).

FLUID's codes come from an encoder trained with engagement supervision (sec. 3.1.3); ours come
from a frozen text or video model with none, so items that users treat alike can land far apart
and the codes mostly follow genre words. A small **linear projection** of the frozen content
vectors is trained on the *training interactions only*, then RQ-KMeans runs on the projected
vectors:

* **Pairs**: consecutive items (a, b) of each user's training part (everything before the
  validation item, :func:`training_pairs`); a held-out item (``dataset.cold_items``) is in none
  of them by construction of the split, and :func:`training_pairs` refuses any that is.
* **Objective**: symmetric in-batch InfoNCE (contrastive next-item): the projected, L2-normalised
  mean content vector of a should score b above the other items of the batch, and vice versa,
  at ``temperature``, Adam; seeded, CPU or CUDA, fitted by the training runs' Lightning Trainer
  (progress, ``checkpoints/last.ckpt``, signals, DDP; :mod:`cva_rec.training.loop_fit`).
* **Projection**: ``W`` [out_dim, d] without bias, initialised orthogonal (seeded), so a linear
  map of segment vectors: the projected mean of an item's segments is the mean of its projected
  segments, and slice codes (per segment) and room codes (vote) keep their meaning.
* **Inductive**: every item, held-out ones included, is encoded as ``W x`` from its content
  alone; the RQ-KMeans codebooks are fitted on the projected segments of the items that occur
  in training pairs only, so a held-out item touches neither the projection nor the codebooks.

:func:`fit_projection` returns, beside the projection, the set of item rows it read
(``rows_read``), which the tests compare with the held-out items.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import lightning as L
import numpy as np
import torch
from torch import nn

from cva_rec.errors import ConfigError, DataError
from cva_rec.training.loop_fit import EpochBatches, epoch_generators, fit_loop, loop_config


def training_pairs(sequences, held_out: Optional[np.ndarray] = None) -> np.ndarray:
    """[P, 2] (item, next item) internal ids from each user's training part (``UserSequences``:
    the items before the validation item). ``held_out`` [n_items] bool: must appear in no pair."""
    train = sequences.prefixes(2)
    items, indptr = train.items, train.indptr
    same_user = np.ones(max(len(items) - 1, 0), dtype=bool)
    ends = indptr[1:-1]  # a user's last item is not followed by the next user's first
    same_user[ends[(ends > 0) & (ends < len(items))] - 1] = False
    pairs = np.stack([items[:-1][same_user], items[1:][same_user]], 1) if len(items) > 1 else np.zeros((0, 2), np.int64)
    if held_out is not None and len(pairs) and np.asarray(held_out)[pairs].any():
        raise DataError("a held-out item occurs in the training interactions: the cold-item split leaked")
    return pairs.astype(np.int64)


class CollaborativeProjection(nn.Module):
    """x [.., d] -> W x [.., out_dim] (no bias: linear, so it commutes with segment means)."""

    def __init__(self, dim: int, out_dim: int, seed: int = 0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, dim))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            q, _ = torch.linalg.qr(torch.randn(max(dim, out_dim), max(dim, out_dim), generator=gen))
            self.weight.copy_(q[:out_dim, :dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T

    @torch.no_grad()
    def project(self, x, chunk: int = 65536) -> np.ndarray:
        """numpy/tensor [n, d] or [n, S, d] -> float32 numpy of the projected vectors."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        flat = x.reshape(-1, x.shape[-1])
        out = torch.cat([self(part.to(self.weight.device)).cpu() for part in flat.split(chunk)]) if len(flat) else \
            torch.zeros(0, self.weight.shape[0])
        return out.reshape(*x.shape[:-1], -1).numpy()


@dataclass
class AlignmentReport:
    pairs: int
    rows_read: np.ndarray  # item rows whose vectors the fit read (sorted)
    epoch_losses: list = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"pairs": self.pairs, "items_read": int(len(self.rows_read)), "epoch_losses": [round(x, 5) for x in self.epoch_losses],
                "fit_seconds": round(self.seconds, 3)}


def info_nce(model: nn.Module, xa: torch.Tensor, xb: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric in-batch InfoNCE: W xa_i should score W xb_i above the batch's other rows, and vice versa."""
    za = nn.functional.normalize(model(xa), dim=-1)
    zb = nn.functional.normalize(model(xb), dim=-1)
    logits = za @ zb.T / temperature
    target = torch.arange(len(xa), device=logits.device)
    return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))


class AlignmentFit(L.LightningModule):
    """The projection trained on batches of (a, b) rows of ``vectors`` [n, d] with Adam at ``lr``."""

    def __init__(self, projection: CollaborativeProjection, vectors: torch.Tensor, lr: float, temperature: float):
        super().__init__()
        self.projection, self.lr, self.temperature = projection, lr, temperature
        self.register_buffer("vectors", vectors, persistent=False)  # data, rebuilt by the caller: not in checkpoints
        self.epoch_losses: list = []
        self._sum, self._steps = 0.0, 0

    def configure_optimizers(self):
        return torch.optim.Adam(self.projection.parameters(), lr=self.lr)

    def on_train_epoch_start(self) -> None:
        self._sum, self._steps = 0.0, 0

    def training_step(self, pairs: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = info_nce(self.projection, self.vectors[pairs[:, 0]], self.vectors[pairs[:, 1]], self.temperature)
        self._sum, self._steps = self._sum + float(loss.detach()), self._steps + 1
        self.log("align/loss", loss, prog_bar=True, batch_size=len(pairs))
        return loss

    def on_train_epoch_end(self) -> None:
        self.epoch_losses.append(self._sum / max(self._steps, 1))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["epoch_losses"] = list(self.epoch_losses)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.epoch_losses = list(checkpoint.get("epoch_losses", []))


def fit_projection(item_vectors, pairs: np.ndarray, out_dim: int = 128, epochs: int = 5, batch_size: int = 1024,
                   lr: float = 1e-3, temperature: float = 0.07, seed: int = 0, device: str = "cpu",
                   run_dir: Optional[Path] = None, train: Optional[Mapping[str, Any]] = None, progress: bool = True,
                   resume: bool = False) -> tuple[CollaborativeProjection, AlignmentReport]:
    """Train the projection on ``pairs`` [P, 2] of rows of ``item_vectors`` [n, d] (symmetric InfoNCE).

    Fitted by the training runs' Trainer (:mod:`cva_rec.training.loop_fit`): ``run_dir`` gets
    ``checkpoints/last.ckpt`` and ``tb/`` (None: a temporary folder); ``train``: a recipe's train section,
    for ``device: cuda`` its devices / strategy (DDP); ``resume``: continue from ``run_dir``'s last.ckpt.
    Each epoch visits the pairs in a random order seeded by ``(seed, epoch)``; a last batch of one pair
    is skipped (no in-batch negative)."""
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) < 2:
        raise DataError(f"collaborative alignment needs at least 2 training pairs [P, 2], got shape {tuple(pairs.shape)}")
    if out_dim < 1 or epochs < 1 or batch_size < 2 or lr <= 0 or temperature <= 0:
        raise ConfigError("alignment needs out_dim >= 1, epochs >= 1, batch_size >= 2, lr > 0, temperature > 0")
    rows = np.unique(pairs)
    # read only the rows the pairs use: nothing else (held-out items) can influence the fit
    local = torch.from_numpy(np.searchsorted(rows, pairs))
    vectors = torch.as_tensor(np.asarray(item_vectors[rows], dtype=np.float32))
    torch.manual_seed(seed)
    model = CollaborativeProjection(vectors.shape[1], out_dim, seed)
    module = AlignmentFit(model, vectors, lr, temperature)

    def draw(epoch: int) -> list:
        order = torch.randperm(len(local), generator=epoch_generators(seed, epoch)[1])
        return [local[idx] for idx in order.split(batch_size) if len(idx) >= 2]

    count = len(local) // batch_size + (len(local) % batch_size >= 2)
    batches = EpochBatches(draw, count, lambda: module.current_epoch)
    t0 = time.perf_counter()
    fit_loop(module, batches, loop_config(device, epochs, None, train), run_dir, progress, resume)
    report = AlignmentReport(len(pairs), rows, list(module.epoch_losses), time.perf_counter() - t0)
    if not all(math.isfinite(x) for x in report.epoch_losses):
        raise ConfigError(f"collaborative alignment diverged (losses {report.epoch_losses}); lower --align-lr")
    return model.to(device).eval(), report
