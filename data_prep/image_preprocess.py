"""uint8 RGB frames -> normalised model input: resize short side, center crop, normalise.

Done in torch (not PIL / HF image processors) so a whole batch is one tensor op and the
same code serves every frame encoder and the CLIP scorer; each caller passes its own
size, mean and std (read from the checkpoint's preprocessor_config.json when it has one).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)


def preprocess_frames(
    frames: np.ndarray | Sequence[np.ndarray],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    interpolation: str = "bicubic",
) -> torch.Tensor:
    """[n, H, W, 3] uint8 -> [n, 3, size, size] float32 (short side resized to ``size``, center crop)."""
    x = torch.from_numpy(np.ascontiguousarray(np.stack(list(frames)) if not isinstance(frames, np.ndarray) else frames))
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 [n, H, W, 3], got {x.dtype} {list(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode=interpolation, align_corners=False, antialias=True)
        x = x.clamp_(0.0, 1.0)  # bicubic overshoots
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[:, :, top:top + size, left:left + size]
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


def read_preprocessor_config(checkpoint: str | Path) -> dict:
    """The checkpoint's preprocessor_config.json as a dict ({} when absent)."""
    p = Path(checkpoint) / "preprocessor_config.json"
    if not p.is_file():
        return {}
    return json.loads(p.read_text(encoding="utf-8"))


def crop_size_from(cfg: dict, default: int) -> int:
    """The square input size a HF image processor config asks for."""
    crop = cfg.get("crop_size") or cfg.get("size") or default
    if isinstance(crop, dict):
        crop = crop.get("height") or crop.get("shortest_edge") or default
    return int(crop)
