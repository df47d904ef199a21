"""The frame-encoder registry and base class (frame-level and video-level encoders both register here)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from cva_rec.errors import ConfigError
from cva_rec.registry import Registry
from data_prep.image_preprocess import preprocess_frames

FRAME_ENCODERS: Registry[Callable[..., "FrameEncoder"]] = Registry("frame encoder")


class FrameEncoder:
    """Base class: subclasses set ``model``, ``dim``, ``image_size``, ``mean``, ``std`` and implement ``_forward``."""

    name = "base"
    dim: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __init__(self, batch_size: int = 32, device: str = "cpu"):
        self.batch_size = int(batch_size)
        self.device = torch.device(device)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # [b, 3, S, S] -> [b, dim]
        raise NotImplementedError

    #: (rows, cols) of the patch features ``encode_patches`` returns; None = no patch tokens
    patch_grid: tuple[int, int] | None = None

    def _forward_patches(self, x: torch.Tensor) -> torch.Tensor:  # [b, 3, S, S] -> [b, rows * cols, dim]
        raise ConfigError(f"frame encoder {self.name!r} gives no patch features; patch tokens need "
                          "efficientnet_lite0, dinov2, dinov3 or vit")

    @torch.inference_mode()
    def _batched(self, frames: np.ndarray, forward, empty_shape: tuple[int, ...]) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, *empty_shape), dtype=np.float32)
        out = []
        for start in range(0, len(frames), self.batch_size):
            x = preprocess_frames(frames[start:start + self.batch_size], self.image_size, self.mean, self.std)
            out.append(forward(x.to(self.device)).float().cpu())
        return torch.cat(out).numpy()

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """[n, H, W, 3] uint8 -> [n, dim] float32."""
        return self._batched(frames, self._forward, (self.dim,))

    def encode_patches(self, frames: np.ndarray) -> np.ndarray:
        """[n, H, W, 3] uint8 -> [n, rows * cols, dim] float32: the final feature map / patch tokens,
        row-major over ``patch_grid`` of the center-cropped ``image_size`` input."""
        if self.patch_grid is None:
            self._forward_patches(None)  # raises the ConfigError
        return self._batched(frames, self._forward_patches, (self.patch_grid[0] * self.patch_grid[1], self.dim))

    def describe(self) -> dict:
        """What goes into the feature store's meta.json."""
        return {"name": self.name, "dim": self.dim, "image_size": self.image_size,
                "mean": list(self.mean), "std": list(self.std)}
