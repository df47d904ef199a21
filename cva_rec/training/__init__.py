"""Training: the datamodule, the LightningModule, losses, full-ranking evaluation and the one Trainer factory."""
from cva_rec.registry import lazy_exports

_LAZY = {"run_experiment": "cva_rec.training.run", "evaluate_run": "cva_rec.training.evaluate", "make_trainer": "cva_rec.training.trainer", "build_loss": "cva_rec.training.losses", "LOSSES": "cva_rec.training.loss_base", "Loss": "cva_rec.training.loss_base"}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)  # names load on first use
