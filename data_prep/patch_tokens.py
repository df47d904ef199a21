"""Codec patch tokens (OneVision-Encoder sec. 2.1-2.2): I-frames whole, P-frames only their salient patches.

For the frames the ``codec`` sampler chose, the per-pixel codec saliency (:mod:`data_prep.codec`)
is carried through the frame encoder's own geometry (short side resized to its input size, center
crop) and averaged over its patch grid, so each score belongs to exactly one patch feature of
:meth:`FrameEncoder.encode_patches`. Tokens are then chosen at a per-video budget:

* I-frames establish the spatial context and keep every patch. The paper spends a quarter of the
  budget on them (512 of 2,048 tokens: two I-frames of 256 patches in a 64-frame clip): here at most
  ``max(1, floor(i_share * budget / P0))`` I-frames get their full grid (evenly spread when more were
  chosen); the other chosen I-frames give no tokens.
* Inter frames give their most salient patches: at most ``floor(patch_ratio * P0)`` per frame (the
  paper keeps 3-25% of a P-frame's patches; default 25%), ranked globally over all of the video's
  inter frames (the paper enforces the budget per clip, not per GOP) until the budget is spent.
  Patches below ``MIN_PATCH_SALIENCY`` (0.1: a 0.4-pixel mean displacement or a 0.8-level mean luma
  error over the patch, i.e. encoder noise on a static region) are never taken, so a static video
  keeps its I-frame tokens only.

Tokens are stored in time order (frame, then row-major patch index) with their positions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cva_rec.errors import ConfigError

DEFAULT_BUDGET = 256
DEFAULT_PATCH_RATIO = 0.25
DEFAULT_I_SHARE = 0.25
MIN_PATCH_SALIENCY = 0.1  # below: codec noise on static content, not new evidence


@dataclass(frozen=True)
class TokenBudget:
    budget: int = DEFAULT_BUDGET
    patch_ratio: float = DEFAULT_PATCH_RATIO
    i_share: float = DEFAULT_I_SHARE

    def check(self, patches_per_frame: int) -> None:
        if self.budget < patches_per_frame:
            raise ConfigError(f"token budget {self.budget} is smaller than one frame's {patches_per_frame} patches; "
                              "raise --token-budget")
        if not 0.0 < self.patch_ratio <= 1.0 or not 0.0 <= self.i_share <= 1.0:
            raise ConfigError(f"--patch-ratio must be in (0, 1] and the I-frame share in [0, 1], "
                              f"got {self.patch_ratio} and {self.i_share}")


def patch_saliency(maps: np.ndarray, image_size: int, grid: tuple[int, int]) -> np.ndarray:
    """[k, H, W] per-pixel saliency -> [k, rows * cols]: the encoder's resize + center crop, then patch means."""
    x = torch.from_numpy(np.asarray(maps, dtype=np.float32)).unsqueeze(1)
    h, w = x.shape[-2:]
    scale = image_size / min(h, w)
    new_h, new_w = max(image_size, round(h * scale)), max(image_size, round(w * scale))
    x = F.interpolate(x, size=(new_h, new_w), mode="area") if (new_h, new_w) != (h, w) else x
    top, left = (new_h - image_size) // 2, (new_w - image_size) // 2
    x = x[:, :, top:top + image_size, left:left + image_size]
    return F.adaptive_avg_pool2d(x, grid).flatten(1).numpy()


def select_tokens(intra: np.ndarray, scores: np.ndarray, budget: TokenBudget) -> np.ndarray:
    """(frame slot, patch index) pairs [T, 2] of the kept tokens, time order (module doc).

    intra [k] bool per chosen frame; scores [k, P0] patch saliency.
    """
    k, p0 = scores.shape
    budget.check(p0)
    intra = np.asarray(intra, bool)
    keyframes = np.flatnonzero(intra)
    n_full = max(1, math.floor(budget.i_share * budget.budget / p0))
    if keyframes.size > n_full:
        keyframes = keyframes[np.floor((np.arange(n_full) + 0.5) * keyframes.size / n_full).astype(np.int64)]
    picked = [(int(f), p) for f in keyframes for p in range(p0)]
    per_frame = max(1, math.floor(budget.patch_ratio * p0))
    candidates = []
    for f in np.flatnonzero(~intra):
        order = np.argsort(-scores[f], kind="stable")[:per_frame]
        candidates += [(-float(scores[f, p]), int(f), int(p)) for p in order if scores[f, p] >= MIN_PATCH_SALIENCY]
    candidates.sort()  # highest saliency first; ties: earlier frame, then lower patch index
    picked += [(f, p) for _, f, p in candidates[:max(0, budget.budget - len(picked))]]
    return np.array(sorted(picked), dtype=np.int64).reshape(-1, 2)


class PatchTokenizer:
    """Chosen frames of one item -> (tokens [T, dim], timestamps [T], positions [T, 2])."""

    def __init__(self, encoder, budget: TokenBudget):
        if encoder.patch_grid is None:
            encoder._forward_patches(None)  # ConfigError naming the encoders that have patches
        self.encoder, self.budget = encoder, budget
        self.grid = tuple(encoder.patch_grid)
        budget.check(self.grid[0] * self.grid[1])

    def __call__(self, frames: np.ndarray, timestamps: np.ndarray, intra: np.ndarray, maps: np.ndarray):
        scores = patch_saliency(maps, self.encoder.image_size, self.grid)
        keep = select_tokens(intra, scores, self.budget)
        patches = self.encoder.encode_patches(frames)  # one item per forward: batch-independent bytes
        return patches[keep[:, 0], keep[:, 1]], timestamps[keep[:, 0]], keep
