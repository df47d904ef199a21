"""The Lightning ``Trainer`` of a run: checkpoints (best by eval.valid_metric + last), early stopping,
TensorBoard, atomic checkpoint IO, and the train.* hardware settings."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

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

    from cva_rec.training.progress import progress_callbacks

    tr = cfg["train"]
    monitor = f"valid/{cfg['eval']['valid_metric'].lower()}" if validate else None
    ckpt = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best" if validate else "last", monitor=monitor, mode="max",
        save_top_k=1, save_last=validate, enable_version_counter=False, auto_insert_metric_name=False,
    )
    cbs = [ckpt, *callbacks, *progress_callbacks(enable_progress_bar)]
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
        max_time=None if tr.get("max_minutes") is None else {"minutes": float(tr["max_minutes"])},
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
        # checkpoints: atomic writes, weights-only reads (cva_rec.io), run identity; under SLURM, its requeue
        # signal saves hpc_ckpt_N.ckpt and requeues the job, which resumes from it (see requeued_by_slurm)
        plugins=[AtomicCheckpointIO(identity), *cluster_plugins()],
        # only Lightning's hpc checkpoints land here: with the run's checkpoints, removed by --overwrite
        default_root_dir=str(run_dir / "checkpoints"),
        num_sanity_val_steps=0,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        log_every_n_steps=10,
    )


def stopped_by(trainer) -> str:
    """What ended a fit: ``early_stopping`` (converged by the patience rule), ``max_minutes`` (train.max_minutes
    ran out), ``max_epochs`` (train.epochs reached) or ``other`` (e.g. a callback's own stop)."""
    from lightning.pytorch.callbacks import EarlyStopping, Timer

    for cb in trainer.callbacks:
        if isinstance(cb, EarlyStopping) and cb.stopped_epoch > 0:
            return "early_stopping"
        if isinstance(cb, Timer) and cb.time_remaining() is not None and cb.time_remaining() <= 0:
            return "max_minutes"
    return "max_epochs" if trainer.current_epoch >= (trainer.max_epochs or 0) else "other"


def cluster_plugins() -> list:
    """Under SLURM (``srun``): its environment with auto-requeue, named here rather than left to Lightning's
    detection so that what a requeue signal does is visible: Lightning saves ``hpc_ckpt_N.ckpt`` and runs
    ``scontrol requeue`` (the job needs ``#SBATCH --signal=SIGUSR1@90``)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=True)] if SLURMEnvironment.detect() else []


def requeued_by_slurm() -> bool:
    """True in a SLURM job that was requeued (``SLURM_RESTART_COUNT`` > 0): its run folder resumes."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0
    except ValueError:
        return False


def resume_checkpoint(run_dir: Path) -> Optional[str]:
    """The checkpoint a resume of ``run_dir`` continues from: the newer of ``last.ckpt`` (end of an epoch) and
    Lightning's newest ``hpc_ckpt_N.ckpt`` (saved mid-epoch when SLURM's requeue signal came), or None."""
    ckpts = Path(run_dir) / "checkpoints"
    found = [p for p in (ckpts / "last.ckpt", *ckpts.glob("hpc_ckpt_*.ckpt")) if p.is_file()]
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


def quiet_lightning():
    """Silence Lightning's advice that does not apply to RecBole loaders (workers, batch counts)."""
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*")
    # signal_connector: "Received SIGTERM" (the CLI's own line says what was saved and how to resume)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric.utilities.seed",
                 "lightning.pytorch.trainer.connectors.signal_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)
