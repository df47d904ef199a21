"""One experiment: claim the run folder, build data and model, fit with Lightning, test the best, report.

A run directory holds ``config.yaml`` (resolved), ``tb/`` (TensorBoard), ``checkpoints/``
(``best.ckpt`` by ``eval.valid_metric``, ``last.ckpt`` for resuming), ``per_user_test.npz`` (every
test user's target and rank: :mod:`.per_user_file`) and ``metrics.json`` (best validation, test with
popularity levels and the inductive split, time, memory, size).

This module is the sequence; each step lives in its own module: the run folder
(:mod:`cva_rec.jobs.run_folder`), content loading (:mod:`.content`), model building (:mod:`.build`),
the trainer (:mod:`.trainer`), timers and memory probes (:mod:`.probes`), ``metrics.json``
(:mod:`.metrics_file`) and checkpoint loading (:mod:`.checkpoint_io`). Their public functions are
re-exported here, where scripts and benchmarks have always imported them.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import torch

import cva_rec
from cva_rec.backbones import item_encoder_of
from cva_rec.data.dataset import SequentialData, build_data
from cva_rec.errors import RunFolderError
from cva_rec.jobs.run_folder import RunClaim, claim_run_folder, run_folder_of
from cva_rec.training.build import build_model, build_module
from cva_rec.training.memory_budget import check_memory
from cva_rec.training.checkpoint_io import load_checkpoint_into
from cva_rec.training.content import load_content
from cva_rec.training.metrics_file import best_valid, write_metrics
from cva_rec.training.per_user_file import PER_USER_FILE, write_per_user
from cva_rec.training.probes import EpochTimer, count_parameters, peak_memory_bytes
from cva_rec.training.run_identity import RunIdentity, dataset_fingerprint
from cva_rec.training.stops import stop_report
from cva_rec.training.trainer import make_trainer, quiet_lightning, requeued_by_slurm, resume_checkpoint, stopped_by

log = logging.getLogger("cva_rec")

__all__ = ["run_experiment", "build_model", "build_module", "load_checkpoint_into", "load_content", "make_trainer",
           "quiet_lightning", "EpochTimer", "count_parameters", "peak_memory_bytes"]


def run_experiment(cfg: Mapping[str, Any], run_dir: Optional[Path] = None, enable_progress_bar: bool = True,
                   data: Optional[SequentialData] = None, prepare: Optional[Callable[[Any], None]] = None,
                   callbacks: Sequence[Any] = (), test_on: str = "best", module=None, overwrite: bool = False,
                   inputs: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Fit on train, select the best epoch on validation, test it; returns ``metrics.json``.

    The run folder is claimed first (:mod:`cva_rec.jobs.run_folder`: one writer, one config; ``overwrite``
    replaces a run it holds) and its ``config.yaml`` written once data and model are built.
    For staged training (``cva_rec.warmup``): ``prepare(module)`` runs before a *fresh* fit (not
    when resuming from ``last.ckpt``, which already holds its weights), e.g. to initialise from
    the previous stage; ``callbacks`` are extra Lightning callbacks; ``test_on="last"`` tests the
    final weights instead of the best validation epoch. ``module`` may be pre-built; after the
    call it holds the tested weights. ``inputs``: name -> path of files read besides those the config
    names (e.g. the seed ``prepare`` loads), fingerprinted with them (:mod:`cva_rec.jobs.provenance`).
    """
    quiet_lightning()
    # a requeued SLURM job runs the same command again: it continues its run instead of being refused
    resume = True if requeued_by_slurm() else None
    with claim_run_folder(run_folder_of(cfg, run_dir), cfg, overwrite=overwrite, resume=resume,
                          inputs=inputs) as claim:
        if claim.nothing_to_train:
            return _finished_run(claim, data, test_on, module)
        return _run_claimed(claim, enable_progress_bar, data, prepare, callbacks, test_on, module)


def _finished_run(claim: RunClaim, data, test_on: str, module) -> Dict[str, Any]:
    """A resume of a finished run with no more epochs to train: the folder is left as it is, its
    ``metrics.json`` is returned (and ``module``, when given, gets the tested weights)."""
    run_dir, cfg = claim.run_dir, claim.cfg
    log.warning("run folder %s holds a finished run of this config (train.epochs=%s): nothing to train, left as it is; "
                "raise train.epochs to train it further, or --overwrite to start it again", run_dir, cfg["train"]["epochs"])
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except ValueError as exc:
        raise RunFolderError(f"{run_dir / 'metrics.json'} of the finished run is unreadable ({exc}); "
                             "--overwrite starts the run again") from None
    if module is not None:
        tested = run_dir / "checkpoints" / ("last.ckpt" if test_on == "last" else "best.ckpt")
        load_checkpoint_into(module, tested, cfg=cfg, dataset=dataset_fingerprint(data) if data is not None else None,
                             against=f"the run folder {run_dir}")
    return metrics


def _run_claimed(claim: RunClaim, enable_progress_bar, data, prepare, callbacks, test_on, module) -> Dict[str, Any]:
    from cva_rec.training.datamodule import RecBoleDataModule

    cfg, run_dir = claim.cfg, claim.run_dir
    t_start, cpu_start = time.perf_counter(), time.process_time()
    data = data or build_data(cfg)
    check_memory(cfg, data)  # before any weight or batch is allocated
    content = load_content(cfg, data)
    module = module if module is not None else build_module(cfg, data, content)
    timer = EpochTimer()
    trainer = make_trainer(cfg, run_dir, [timer, *callbacks], enable_progress_bar, identity=RunIdentity(cfg, data))
    resume = resume_checkpoint(run_dir) if claim.resume and not claim.overwrite else None
    if prepare is not None and resume is None:
        prepare(module)
    claim.commit_config()  # every check passed: now the folder says which config it holds
    # Lightning resolved the checkpoint folder when the Trainer was built; --overwrite may since have
    # replaced a symlink there by the run's own folder: checkpoints are written inside the run folder only
    trainer.checkpoint_callback.dirpath = str((run_dir / "checkpoints").resolve())
    if cfg["train"]["accelerator"] in ("gpu", "cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with stop_report(trainer, run_dir):  # SIGTERM / Ctrl+C: one Stopped naming what is saved
        trainer.fit(module, datamodule=RecBoleDataModule(data, cfg), ckpt_path=resume)
    best = trainer.checkpoint_callback.best_model_path or None
    if test_on == "last":
        best = None  # test the weights the fit ended with
    fit_seconds, fit_cpu_seconds = time.perf_counter() - t_start, time.process_time() - cpu_start
    stop_reason = stopped_by(trainer)  # before the test: loading best.ckpt restores the callbacks' older state
    valid = dict(module.results.get("valid", {}))
    if best:
        valid = best_valid(trainer, module.valid_epochs)
    else:
        valid["from"] = "last epoch"
    with stop_report(trainer, run_dir):
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
        "stopped_by": stop_reason,  # early_stopping = converged by the patience rule
        "best_checkpoint": best,
        "train_epoch_seconds": timer.seconds,
        "seconds_per_epoch": (sum(timer.seconds) / len(timer.seconds)) if timer.seconds else None,
        "total_seconds": time.perf_counter() - t_start,
        "fit_seconds": fit_seconds,
        # CPU time of this process (all its threads) while fitting: a figure that other jobs on the machine
        # inflate far less than the wall time
        "fit_cpu_seconds": fit_cpu_seconds,
        "peak_memory_bytes": peak_memory_bytes(trainer.strategy.root_device.type),
        "peak_memory_kind": "cuda_max_allocated" if trainer.strategy.root_device.type == "cuda" else "process_peak_rss",
        "parameters": count_parameters(module.model),
        "encoder_parameters": count_parameters(item_encoder_of(module.model)),
        "n_items": data.n_items,
        "n_users": data.dataset.user_num - 1,
        "cva_rec_version": cva_rec.__version__,
        "config_id": claim.config_id,
        "per_user": PER_USER_FILE if "test" in module.eval_rows else None,
        "artifacts": claim.artifacts,  # the input files by content: which bytes this row was computed from
    }
    if trainer.is_global_zero and "test" in module.eval_rows:  # before metrics.json: a finished run has both
        write_per_user(run_dir, cfg, data, module.eval_rows["test"], module.cold_items)
    write_metrics(trainer, run_dir, cfg, metrics)
    return metrics
