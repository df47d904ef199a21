"""One experiment: build data, model and loss from a config, fit with Lightning, test the best.

A run directory holds ``config.yaml`` (resolved), ``tb/`` (TensorBoard), ``checkpoints/``
(``best.ckpt`` by ``eval.valid_metric``, ``last.ckpt`` for resuming) and ``metrics.json``
(best validation, test with popularity levels and the inductive split, time, memory, size).
"""
from __future__ import annotations

import logging
import os
import resource
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import torch

import cva_rec
from cva_rec.backbones import build_backbone, item_encoder_of
from cva_rec.data import SequentialData, build_data
from cva_rec.errors import CheckpointError
from cva_rec.io import atomic_write_json, load_torch_file
from cva_rec.run_folder import RunClaim, claim_run_folder, run_folder_of
from cva_rec.training.losses import build_loss

log = logging.getLogger("cva_rec")


def load_content(cfg: Mapping[str, Any], data: SequentialData):
    """The configured feature store aligned to the dataset's item ids, or None."""
    c = cfg["content"]
    if not c["store"]:
        return None
    from cva_rec.features import open_store
    from cva_rec.features.shared import shared_aligned_content

    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[c["dtype"]]
    store = open_store(c["store"])
    # aligned once, memory-mapped: the DDP ranks of a node share one copy
    return shared_aligned_content(store, data.item_tokens, Path(cfg["output"]["dir"]) / ".content_cache",
                                  missing=c["missing"], dtype=dtype, max_frames=c["max_frames"])


def build_model(cfg: Mapping[str, Any], data: SequentialData, content=None):
    from recbole.utils import init_seed

    # RecBole's quick start re-seeds right before building the model: same here, so the
    # initial weights equal those of RecBole's own pipeline for the same seed.
    init_seed(cfg["train"]["seed"], True)
    return build_backbone(cfg, data.config, data.train._dataset, content)


def build_module(cfg: Mapping[str, Any], data: SequentialData, content=None):
    from cva_rec.training.module import SeqRecModule

    model = build_model(cfg, data, content)
    loss = build_loss(cfg, data.item_popularity, data)
    if loss.encodes_all_items and cfg["item_encoder"]["name"] != "id":
        log.warning(
            "loss full_softmax with content encoder %r encodes all %d items every training step; "
            "inbatch_softmax or sampled_softmax encode only the batch's items",
            cfg["item_encoder"]["name"], data.n_items,
        )
    return SeqRecModule(cfg, model, loss, data.item_popularity, seen_in_training=data.seen_in_training, cold_items=data.cold_items)


class EpochTimer:
    """Lightning callback: wall-clock seconds of each training epoch, validation excluded."""

    def __new__(cls):
        import lightning as L

        class _Timer(L.Callback):
            def __init__(self):
                self.seconds = []
                self._t0 = None

            def on_train_epoch_start(self, trainer, pl_module):
                self._t0 = time.perf_counter()

            # Lightning runs the epoch's validation *before* on_train_epoch_end, so the clock
            # stops when validation starts (or at the epoch's end when there is none)
            def on_validation_start(self, trainer, pl_module):
                self._stop()

            def on_train_epoch_end(self, trainer, pl_module):
                self._stop()
                if self.seconds:
                    pl_module.log("time/train_epoch_seconds", self.seconds[-1], on_epoch=True, sync_dist=True)

            def _stop(self):
                if self._t0 is not None:  # only a training epoch starts the clock
                    self.seconds.append(time.perf_counter() - self._t0)
                    self._t0 = None

        return _Timer()


def peak_memory_bytes(device_type: str) -> int:
    if device_type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    # ru_maxrss is KiB on Linux: the whole process's peak resident set
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_trainer(cfg: Mapping[str, Any], run_dir: Path, callbacks=(), enable_progress_bar: bool = True):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from cva_rec.training.checkpoint_io import AtomicCheckpointIO

    tr, ev = cfg["train"], cfg["eval"]
    monitor = f"valid/{ev['valid_metric'].lower()}"
    ckpt = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode="max",
        save_top_k=1, save_last=True, enable_version_counter=False, auto_insert_metric_name=False,
    )
    cbs = [ckpt, *callbacks]
    if tr["early_stopping_patience"]:
        cbs.append(EarlyStopping(monitor=monitor, mode="max", patience=int(tr["early_stopping_patience"])))
    return L.Trainer(
        max_epochs=tr["epochs"],
        accelerator=tr["accelerator"],
        devices=tr["devices"],
        strategy=tr["strategy"],
        num_nodes=tr["num_nodes"],
        precision=tr["precision"],
        deterministic=bool(tr["deterministic"]),
        gradient_clip_val=tr["grad_clip"],
        limit_train_batches=tr["limit_train_batches"],
        callbacks=cbs,
        logger=TensorBoardLogger(str(run_dir), name="tb", version="", default_hp_metric=False),
        plugins=[AtomicCheckpointIO()],  # checkpoints: atomic writes, weights-only reads (cva_rec.io)
        default_root_dir=str(run_dir),
        num_sanity_val_steps=0,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        log_every_n_steps=10,
    )


def _quiet_lightning():
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_experiment(cfg: Mapping[str, Any], run_dir: Optional[Path] = None, enable_progress_bar: bool = True,
                   data: Optional[SequentialData] = None, prepare: Optional[Callable[[Any], None]] = None,
                   callbacks: Sequence[Any] = (), test_on: str = "best", module=None, overwrite: bool = False) -> Dict[str, Any]:
    """Fit on train, select the best epoch on validation, test it; returns ``metrics.json``.

    The run folder is claimed first (:mod:`cva_rec.run_folder`: one writer, one config; ``overwrite``
    replaces a run it holds) and its ``config.yaml`` written once data and model are built.
    For staged training (``cva_rec.warmup``): ``prepare(module)`` runs before a *fresh* fit (not
    when resuming from ``last.ckpt``, which already holds its weights), e.g. to initialise from
    the previous stage; ``callbacks`` are extra Lightning callbacks; ``test_on="last"`` tests the
    final weights instead of the best validation epoch. ``module`` may be pre-built; after the
    call it holds the tested weights.
    """
    _quiet_lightning()
    with claim_run_folder(run_folder_of(cfg, run_dir), cfg, overwrite=overwrite) as claim:
        return _run_claimed(claim, enable_progress_bar, data, prepare, callbacks, test_on, module)


def _run_claimed(claim: RunClaim, enable_progress_bar, data, prepare, callbacks, test_on, module) -> Dict[str, Any]:
    from cva_rec.training.datamodule import RecBoleDataModule

    cfg, run_dir = claim.cfg, claim.run_dir
    t_start = time.perf_counter()
    data = data or build_data(cfg)
    content = load_content(cfg, data)
    module = module if module is not None else build_module(cfg, data, content)
    timer = EpochTimer()
    trainer = make_trainer(cfg, run_dir, [timer, *callbacks], enable_progress_bar)
    last = run_dir / "checkpoints" / "last.ckpt"
    resume = str(last) if claim.resume and not claim.overwrite and last.exists() else None
    if prepare is not None and resume is None:
        prepare(module)
    claim.commit_config()  # every check passed: now the folder says which config it holds
    if cfg["train"]["accelerator"] in ("gpu", "cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=RecBoleDataModule(data, cfg), ckpt_path=resume)
    best = trainer.checkpoint_callback.best_model_path or None
    if test_on == "last":
        best = None  # test the weights the fit ended with
    fit_seconds = time.perf_counter() - t_start
    valid = dict(module.results.get("valid", {}))
    if best:
        valid = _best_valid(trainer, valid)
    else:
        valid["from"] = "last epoch"
    trainer.test(module, datamodule=RecBoleDataModule(data, cfg), ckpt_path=best if best else None, verbose=False)
    metrics = {
        "run": run_dir.name,
        "model": cfg["model"]["name"],
        "item_encoder": cfg["item_encoder"]["name"],
        "loss": cfg["loss"]["name"],
        "dataset": cfg["dataset"]["name"],
        "seed": cfg["train"]["seed"],
        "valid": valid,
        "test": module.results.get("test", {}),
        "epochs_trained": int(trainer.current_epoch),
        "best_checkpoint": best,
        "train_epoch_seconds": timer.seconds,
        "seconds_per_epoch": (sum(timer.seconds) / len(timer.seconds)) if timer.seconds else None,
        "total_seconds": time.perf_counter() - t_start,
        "fit_seconds": fit_seconds,
        "peak_memory_bytes": peak_memory_bytes(trainer.strategy.root_device.type),
        "peak_memory_kind": "cuda_max_allocated" if trainer.strategy.root_device.type == "cuda" else "process_peak_rss",
        "parameters": count_parameters(module.model),
        "encoder_parameters": count_parameters(item_encoder_of(module.model)),
        "n_items": data.n_items,
        "n_users": data.dataset.user_num - 1,
        "cva_rec_version": cva_rec.__version__,
        "config_id": claim.config_id,
    }
    if trainer.is_global_zero:
        atomic_write_json(run_dir / "metrics.json", metrics)
        _log_hparams(trainer, cfg, metrics)
    return metrics


def _best_valid(trainer, last_valid):
    cb = trainer.checkpoint_callback
    out = dict(last_valid)
    if cb.best_model_score is not None:
        out[trainer.checkpoint_callback.monitor.split("/", 1)[1]] = float(cb.best_model_score)
    out["from"] = "best checkpoint (the monitored metric); other values from the last epoch"
    return out


def _log_hparams(trainer, cfg, metrics):
    flat = {f"{sec}.{k}": (v if isinstance(v, (int, float, str, bool)) else str(v)) for sec, d in cfg.items() for k, v in d.items()}
    scalars = {f"hparams/test_{k}": v for k, v in metrics["test"].items() if isinstance(v, float)}
    try:
        trainer.logger.log_hyperparams(flat, scalars)
    except Exception as exc:  # TensorBoard hparams are a convenience, never a reason to fail a run
        log.warning("could not write TensorBoard hparams: %s", exc)


def load_checkpoint_into(module, path: str | os.PathLike) -> None:
    """Load a Lightning checkpoint's weights; unreadable or mismatched -> CheckpointError."""
    path = Path(path)
    state = load_torch_file(path, "checkpoint")  # weights only: a checkpoint someone hands over is data, not code
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointError(f"{path} is not a cva_rec/Lightning checkpoint (no state_dict)")
    missing, unexpected = module.load_state_dict(state["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")
