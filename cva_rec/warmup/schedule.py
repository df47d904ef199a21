"""The item-ID phase-out schedule of FLUID's stage 2: the ID's weight goes from 1 to 0.

``id_scale(progress)`` for progress in [0, 1] over the phase-out span (then 0 for good):
``linear`` 1 - p; ``cosine`` (1 + cos(pi p)) / 2 (gentle at both ends); ``step`` drops in
``steps`` equal stairs (1, 1 - 1/steps, ..., then 0). :class:`IdPhaseOut` applies it per
training step, so the schedule continues correctly after a resumed fit.
"""
from __future__ import annotations

import math

from cva_rec.errors import ConfigError

SCHEDULES = ("linear", "cosine", "step")


def id_scale(progress: float, schedule: str = "linear", steps: int = 4) -> float:
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown phase-out schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    p = min(max(float(progress), 0.0), 1.0)
    if p >= 1.0:
        return 0.0
    if schedule == "linear":
        return 1.0 - p
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    return 1.0 - math.floor(p * steps) / steps


def IdPhaseOut(encoder, span_epochs: float, schedule: str = "linear", steps: int = 4, where: str = "candidate"):
    """Lightning callback: before each training batch, set the ID's weight on the ``where`` side
    (``encoder.set_id_scale``, :mod:`cva_rec.encoders.id_retirement`) from the global step,
    the schedule spanning ``span_epochs`` epochs of the trainer's own batches per epoch (which already
    reflect ``limit_train_batches`` and DDP sharding).

    (A factory so that importing this module does not import Lightning.)
    """
    import lightning as L

    class _IdPhaseOut(L.Callback):
        span = 1
        scale = 1.0

        def on_train_start(self, trainer, pl_module):
            self.span = max(1, int(span_epochs * trainer.num_training_batches))

        def _apply(self, trainer):
            self.scale = id_scale(trainer.global_step / self.span, schedule, steps)
            encoder.set_id_scale(self.scale, where)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._apply(trainer)

        def on_validation_epoch_start(self, trainer, pl_module):
            self._apply(trainer)  # evaluate with the scale the next step would use

        def on_train_epoch_end(self, trainer, pl_module):
            pl_module.log("warmup/id_scale", self.scale, on_epoch=True)

    return _IdPhaseOut()
