"""Training: the datamodule, the LightningModule, losses, full-ranking evaluation and the one Trainer factory."""
from importlib import import_module

_LAZY = {"run_experiment": "cva_rec.training.run", "evaluate_run": "cva_rec.training.evaluate", "make_trainer": "cva_rec.training.trainer", "build_loss": "cva_rec.training.losses", "LOSSES": "cva_rec.training.loss_base", "Loss": "cva_rec.training.loss_base"}

__all__ = sorted(_LAZY)


def __getattr__(name):  # names load on first use: importing one submodule does not import the others
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
