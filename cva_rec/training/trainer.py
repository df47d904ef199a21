"""The Lightning ``Trainer`` of a run: checkpoints (best by eval.valid_metric + last), early stopping,
TensorBoard, atomic checkpoint IO, and the train.* hardware settings."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Mapping

from cva_rec.errors import ConfigError


def make_trainer(cfg: Mapping[str, Any], run_dir: Path, callbacks=(), enable_progress_bar: bool = True, identity=None,
                 validate: bool = True):
    """``identity`` (a :class:`~cva_rec.training.run_identity.RunIdentity`): recorded in every checkpoint
    written, required of every checkpoint read back (see :mod:`.checkpoint_io`).
    ``validate=False``: a fit without validation (cva_rec.training.loop_fit): no early stopping, and the one
    checkpoint, ``last.ckpt``, written after every epoch (Lightning's save_last alone waits for the fit's end)."""
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    tr = cfg["train"]
    monitor = f"valid/{cfg['eval']['valid_metric'].lower()}" if validate else None
    ckpt = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best" if validate else "last", monitor=monitor, mode="max",
        save_top_k=1, save_last=validate, enable_version_counter=False, auto_insert_metric_name=False,
    )
    cbs = [ckpt, *callbacks]
    if validate and tr["early_stopping_patience"]:
        cbs.append(EarlyStopping(monitor=monitor, mode="max", patience=int(tr["early_stopping_patience"])))
    try:
        return _trainer(L, tr, run_dir, cbs, enable_progress_bar, identity)
    # Lightning checks accelerator / devices / strategy / precision when the Trainer is built
    # (a gpu on a machine without one, a strategy it does not know, tpu without torch_xla): one line
    except (MisconfigurationException, ValueError, TypeError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"Lightning refused the train.* settings (accelerator={tr['accelerator']!r}, "
                          f"devices={tr['devices']!r}, strategy={tr['strategy']!r}, precision={tr['precision']!r}): {first}") from None


def precision_of(tr: Mapping[str, Any]):
    """``train.fast`` turns the default full precision into bf16-mixed (autocast) on a GPU with bf16, and on a
    CPU whose oneDNN has bf16 kernels (measured on one AVX-512-BF16 core: ~2x faster steps, cva-rec bench
    fast-path); an explicit ``train.precision`` is kept."""
    if not tr.get("fast") or tr["precision"] != "32-true":
        return tr["precision"]
    import torch

    accelerator = str(tr["accelerator"])
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else tr["precision"]
    if accelerator in ("cpu", "auto") and cpu_has_bf16():
        return "bf16-mixed"
    return tr["precision"]


def cpu_has_bf16() -> bool:
    import torch

    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _trainer(L, tr, run_dir: Path, cbs, enable_progress_bar: bool, identity=None):
    from lightning.pytorch.loggers import TensorBoardLogger

    from cva_rec.training.checkpoint_io import AtomicCheckpointIO

    return L.Trainer(
        max_epochs=tr["epochs"],
        accelerator=tr["accelerator"],
        devices=tr["devices"],
        strategy=tr["strategy"],
        num_nodes=tr["num_nodes"],
        precision=precision_of(tr),
        deterministic=bool(tr["deterministic"]),
        gradient_clip_val=tr["grad_clip"],
        limit_train_batches=tr["limit_train_batches"],
        callbacks=cbs,
        logger=TensorBoardLogger(str(run_dir), name="tb", version="", default_hp_metric=False),
        plugins=[AtomicCheckpointIO(identity)],  # checkpoints: atomic writes, weights-only reads (cva_rec.io), run identity
        default_root_dir=str(run_dir),
        num_sanity_val_steps=0,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        log_every_n_steps=10,
    )


def quiet_lightning():
    """Silence Lightning's advice that does not apply to RecBole loaders (workers, batch counts)."""
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
