"""Evaluate a finished run's checkpoint without training."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from cva_rec.config import load_config
from cva_rec.data import build_data
from cva_rec.errors import CheckpointError, ConfigError
from cva_rec.io import atomic_write_json


def evaluate_run(run_dir: Path, checkpoint: Optional[str] = None, split: str = "test", overrides: Sequence[str] = (),
                 progress: bool = True) -> Dict[str, Any]:
    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.run import _quiet_lightning, build_module, load_checkpoint_into, load_content, make_trainer

    _quiet_lightning()
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml", overrides)
    ckpt = Path(checkpoint) if checkpoint else run_dir / "checkpoints" / "best.ckpt"
    if not ckpt.is_file():
        raise CheckpointError(f"checkpoint not found: {ckpt}")
    data = build_data(cfg)
    module = build_module(cfg, data, load_content(cfg, data))
    load_checkpoint_into(module, ckpt)
    trainer = make_trainer(cfg, run_dir / "eval", enable_progress_bar=progress)
    dm = RecBoleDataModule(data, cfg)
    if split == "test":
        trainer.test(module, datamodule=dm, verbose=False)
    else:
        trainer.validate(module, datamodule=dm, verbose=False)
    result = module.results["test" if split == "test" else "valid"]
    atomic_write_json(run_dir / f"eval_{split}_{ckpt.stem}.json", result)
    return result
