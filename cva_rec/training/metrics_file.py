"""``metrics.json``: what a finished run reports (validation, test, time, memory, size), written by rank 0."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Mapping

from cva_rec.io import atomic_write_json

log = logging.getLogger("cva_rec")


def write_metrics(trainer, run_dir: Path, cfg: Mapping[str, Any], metrics: Dict[str, Any]) -> None:
    """Rank 0 writes ``metrics.json`` (atomically: a run is finished once it exists) and the TensorBoard hparams."""
    if trainer.is_global_zero:
        atomic_write_json(run_dir / "metrics.json", metrics)
        _log_hparams(trainer, cfg, metrics)


def best_valid(trainer, last_valid):
    """The last validation's metrics with the monitored one taken from the best checkpoint."""
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
