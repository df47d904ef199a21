"""Training and evaluation progress for logs: :class:`PlainProgressBar` replaces Lightning's bar when the
progress stream is not a terminal (nohup, SLURM, CI), and :class:`CompileTimer` says when ``train.fast``
compiles and how long it took.

Why a callback of our own and not ``TQDMProgressBar``: tqdm redraws one line with ``\\r``, which a log file
shows only when the bar ends (a whole epoch, or the whole run), and its refresh rate counts batches, not
seconds. :class:`PlainProgressBar` prints whole, flushed lines at a bounded rate instead
(:mod:`cva_rec.plain_progress`): step/total, the epoch's mean loss so far, it/s and ETA, then one line per
epoch with the validation metrics.
"""
from __future__ import annotations

import time
from typing import Any, Dict, Optional

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks.progress import ProgressBar

from cva_rec.plain_progress import ProgressLines, format_fields, plain_lines_wanted, progress_stream


def progress_callbacks(enable_progress_bar: bool) -> list:
    """The progress callbacks of a Trainer: plain lines off a terminal (Lightning's bar on one), and the
    compile timer in any case."""
    out: list = [CompileTimer()]
    if enable_progress_bar and plain_lines_wanted():
        out.append(PlainProgressBar())
    return out


def _say(text: str) -> None:
    stream = progress_stream()
    stream.write(text + "\n")
    stream.flush()


class PlainProgressBar(ProgressBar):
    """Lightning's progress bar slot, filled with plain lines (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._train: Optional[ProgressLines] = None
        self._eval: Optional[ProgressLines] = None
        self._loss_sum: Any = 0.0
        self._loss_steps = 0
        self._eval_t0 = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:  # LightningModule.print asks it
        return self._enabled

    @property
    def is_disabled(self) -> bool:
        return not self._enabled

    @property
    def _on(self) -> bool:
        return self._enabled and self.trainer.is_global_zero

    def _epoch(self) -> str:
        if self.trainer.state.fn is not None and self.trainer.state.fn.value != "fit":
            return "evaluate"  # trainer.validate / test outside a fit (cva-rec evaluate)
        return f"epoch {self.trainer.current_epoch + 1}/{self.trainer.max_epochs}"

    def _mean_loss(self) -> Dict[str, Any]:
        # the loss stays a tensor until a line is printed: .item() would wait for the GPU at every step
        return {"loss": float(self._loss_sum) / self._loss_steps} if self._loss_steps else {}

    # -- training ---------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._on:
            self._train = ProgressLines(f"{self._epoch()} train", self.total_train_batches, "step")
            self._loss_sum, self._loss_steps = 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._on or self._train is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._loss_sum = self._loss_sum + loss.detach().float()
            self._loss_steps += 1
        self._train.update(1, self._mean_loss)

    def _close_train(self) -> None:
        # at the epoch's validation, which Lightning runs before on_train_epoch_end, or at that end
        if self._on and self._train is not None:
            self._train.close(self._mean_loss)
            self._train = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._close_train()

    # -- evaluation -------------------------------------------------------------------------------
    def _eval_start(self, what: str, total) -> None:
        if self._on:
            self._eval_t0 = time.monotonic()
            self._eval = ProgressLines(what, total, "batch")

    def _eval_end(self, split: str, what: str) -> None:
        if not self._on:
            return
        metrics = {k.split("/", 1)[1]: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(f"{split}/")}
        _say(f"{what}: {format_fields(metrics) or 'done'} ({time.monotonic() - self._eval_t0:.1f} s)")
        self._eval = None

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._close_train()
            self._eval_start(f"{self._epoch()} valid", self.total_val_batches)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._on and self._eval is not None:
            self._eval.update(1)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._eval_end("valid", f"{self._epoch()} valid")

    def on_test_start(self, trainer, pl_module) -> None:
        self._eval_start("test", sum(trainer.num_test_batches))

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._on and self._eval is not None:
            self._eval.update(1)

    def on_test_end(self, trainer, pl_module) -> None:
        self._eval_end("test", "test")


class CompileTimer(Callback):
    """``train.fast`` with ``train.compile``: torch.compile runs lazily inside the first step (and again at
    the first evaluation batch, a new shape): say so before it starts and how long it took, so minutes
    without a line do not look like a hang."""

    def __init__(self) -> None:
        self._pending = {"train": True, "valid": True}
        self._t0 = 0.0

    @staticmethod
    def _compiles(pl_module) -> bool:
        return bool(getattr(getattr(pl_module, "model", None), "compiled", False))

    def _start(self, trainer, pl_module, phase: str) -> None:
        if self._pending[phase] and self._compiles(pl_module):
            if trainer.is_global_zero:
                cache = getattr(pl_module.model, "compile_cache", None)
                where = f"; cached in {cache}, a later run of the same shapes reuses it" if cache else ""
                _say(f"train.fast: torch.compile compiles the backbone at its first {phase} batch "
                     f"(can take minutes; train.compile=false skips it{where})")
            self._t0 = time.monotonic()
        else:
            self._pending[phase] = False

    def _end(self, trainer, phase: str) -> None:
        if self._pending[phase]:
            self._pending[phase] = False
            if trainer.is_global_zero:
                _say(f"train.fast: first {phase} batch (with compiling) took {time.monotonic() - self._t0:.1f} s")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._pending["train"]:
            self._start(trainer, pl_module, "train")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._end(trainer, "train")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self._pending["valid"] and not trainer.sanity_checking:
            self._start(trainer, pl_module, "valid")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._end(trainer, "valid")
