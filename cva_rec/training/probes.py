"""What a run measures about itself: seconds per training epoch, peak memory, parameter counts."""
from __future__ import annotations

import resource
import time

import torch


class EpochTimer:
    """Lightning callback: wall-clock seconds of each training epoch, validation excluded (also the
    epochs trained before a resume: they are kept in the checkpoints)."""

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

            # kept in the checkpoints: a resumed run reports the epochs it trained before, too
            def state_dict(self):
                return {"seconds": list(self.seconds)}

            def load_state_dict(self, state):
                self.seconds = [float(x) for x in state.get("seconds", [])]

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
