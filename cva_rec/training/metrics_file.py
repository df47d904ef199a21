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


def best_valid(trainer, valid_epochs) -> Dict[str, Any]:
    """The validation metrics of the epoch whose checkpoint is ``best.ckpt``, every one of them from that epoch.

    ``valid_epochs``: the fit's validation rows (``SeqRecModule.valid_epochs``). ModelCheckpoint keeps the
    first epoch that reached its best monitored value (it replaces best.ckpt only on a strict improvement).
    """
    cb = trainer.checkpoint_callback
    key = cb.monitor.split("/", 1)[1]
    rows = [r for r in valid_epochs if isinstance(r.get(key), float)]
    if cb.best_model_score is None or not rows:
        return {"from": "no validation recorded"}
    best = float(cb.best_model_score)
    row = min(rows, key=lambda r: (abs(r[key] - best), r["epoch"]))  # the best value, its first epoch
    if abs(row[key] - best) > 1e-6 * max(1.0, abs(best)):
        # resumed from a checkpoint that did not record its validations: only the monitored value is known
        return {key: best, "from": f"best checkpoint ({key} only: the epochs before the resume are not recorded)"}
    out = {k: v for k, v in row.items() if k != "epoch"}
    out["epoch"] = int(row["epoch"])
    out["from"] = f"best checkpoint (epoch {row['epoch']}, counted from 0 as in the checkpoint; best {key}); every value from that epoch"
    return out


def _log_hparams(trainer, cfg, metrics):
    flat = {f"{sec}.{k}": (v if isinstance(v, (int, float, str, bool)) else str(v)) for sec, d in cfg.items() for k, v in d.items()}
    scalars = {f"hparams/test_{k}": v for k, v in metrics["test"].items() if isinstance(v, float)}
    try:
        trainer.logger.log_hyperparams(flat, scalars)
        # the test stage already closed the writer, and logging reopened it: close it again, or its buffered
        # events reach the run folder later, after the run returned and released the folder
        trainer.logger.finalize("success")
    except Exception as exc:  # TensorBoard hparams are a convenience, never a reason to fail a run
        log.warning("could not write TensorBoard hparams: %s", exc)
