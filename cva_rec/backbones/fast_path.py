"""The opt-in fast path (``train.fast: true``): what its backbones share.

Measured on one CPU core (ml-1m, length 50, batch 2048, ``cva-rec bench fast-path``), an exact
SASRec step spends most of its time outside the matrix products: ``nn.Dropout`` draws one
32-bit Mersenne-Twister number per element through ``bernoulli_`` (~1/5 of the step), RecBole's
GELU is five elementwise passes, and every small op reads and writes the whole activation.

* :class:`QuantizedDropout`: the same dropout (zero with probability ``p``, scale the rest by
  ``1 / (1 - p)``) with the keep mask read from 16-bit random words, two per 32-bit draw
  (~20x cheaper to draw than ``bernoulli_`` on CPU). ``p`` is rounded to a multiple of 1/65536
  (exact for 0.5, 0.25, ...; off by < 8e-6 otherwise). The masks are another draw from the same
  seeded generator, so a fast run is another sample of the same model, not the exact path's.
* :class:`FastBackbone`: a mixin for a backbone class that swaps its ``nn.Dropout`` modules for
  :class:`QuantizedDropout` and, with :meth:`compile_forward`, runs ``forward`` through
  ``torch.compile`` (inductor fuses the elementwise chains; random numbers stay ATen's
  (``fallback_random``), so compiled and eager runs draw alike). Parameter names and initial
  weights are those of the exact class, so checkpoints load either way.
* :func:`use_compile_cache`: inductor's on-disk caches (FX graphs, AOT autograd) go to a per-user
  folder that outlives the machine's temporary directory (``~/.cache/cva_rec/inductor``, or
  ``$XDG_CACHE_HOME/cva_rec/inductor``), unless ``TORCHINDUCTOR_CACHE_DIR`` is set: a later run of
  the same backbone and shapes loads the compiled kernels instead of compiling them again.

bf16 autocast (``cva_rec.training.trainer.precision_of``) is the third part of the fast path.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
from torch import nn


class QuantizedDropout(nn.Dropout):
    """``nn.Dropout`` with its keep mask from 16-bit random words (``p`` rounded to 1/65536)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return torch.zeros_like(x)
        n = x.numel()
        words = torch.randint(-2**31, 2**31 - 1, ((n + 1) // 2,), dtype=torch.int32, device=x.device)
        # a signed 16-bit word is below round(p * 65536) - 32768 with probability round(p * 65536) / 65536
        keep = words.view(torch.int16)[:n].view(x.shape) >= (round(self.p * 65536) - 32768)
        return x * keep * (1.0 / (1.0 - self.p))


def quantize_dropouts(module: nn.Module) -> None:
    """Replace every plain ``nn.Dropout`` under ``module`` by a :class:`QuantizedDropout` of the same ``p``."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, QuantizedDropout(child.p))
        else:
            quantize_dropouts(child)


def use_compile_cache() -> Path:
    """The folder inductor caches compiled graphs in: ``TORCHINDUCTOR_CACHE_DIR`` when the user set it,
    otherwise ``$XDG_CACHE_HOME/cva_rec/inductor`` (``~/.cache/...``), which this sets for the process."""
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not chosen:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        chosen = str(Path(base) / "cva_rec" / "inductor")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = chosen  # read by inductor at each cache access
    return Path(chosen)


class FastBackbone:
    """Mixin (first base) for a backbone class on the fast path; see the module docstring."""

    _compiled_forward: Optional[object] = None
    compile_cache: Optional[Path] = None  # where inductor caches the compiled forward (see use_compile_cache)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        quantize_dropouts(self)  # builds no parameters: the seeded stream and the weights are unchanged

    def compile_forward(self) -> None:
        """Run ``forward`` through ``torch.compile`` from now on (compiled lazily, at the first call; a
        later process with the same shapes reads the kernels from :func:`use_compile_cache`'s folder)."""
        self.compile_cache = use_compile_cache()
        self._compiled_forward = torch.compile(super().forward, options={"fallback_random": True})

    @property
    def compiled(self) -> bool:
        """Whether ``forward`` runs through ``torch.compile`` (it compiles at its first call)."""
        return self._compiled_forward is not None

    def forward(self, item_seq, item_seq_len=None, items=None):
        if self._compiled_forward is None:
            return super().forward(item_seq, item_seq_len, items)
        return self._compiled_forward(item_seq, item_seq_len, items)
