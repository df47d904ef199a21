"""Video-level embedders: a VLM reads an item's frames and gives one vector per video (or per segment).

``gve`` (GVE, Universal Video Embedder, arXiv 2510.27571): a Qwen2.5-VL model adapted with LoRA
and trained with InfoNCE; the embedding is the final hidden state of the last token (L2-normalised).
``qwen2_vl`` loads any Qwen2-VL / Qwen2.5-VL checkpoint the same way (same code, other weights).
Both are registered in the frame-encoder registry with ``video_level = True``: the store's
"frame" axis then holds ``segments`` vectors per item (1 = one per video), each timestamped with its
segment's first frame.

Weights come from a LOCAL transformers checkpoint directory (``--checkpoint``): ``config.json``
(model_type ``qwen2_vl`` or ``qwen2_5_vl``), the weights (``*.safetensors``), the tokenizer files and
``preprocessor_config.json``. Nothing is downloaded; a missing directory or missing weights is a
:class:`ConfigError` that says what to put where.

The frames are turned into Qwen2-VL video input here, without the transformers video processor
(which needs torchvision, not installed here): each frame is resized with PIL bicubic to
``smart_resize``'s size (multiples of patch x merge = 28, pixel count within the checkpoint's
``min_pixels``/``max_pixels``), scaled to [0, 1], normalised with the checkpoint's mean/std, and
patchified with the processor's layout (frames grouped by ``temporal_patch_size``, merge windows
contiguous). ``tests/data_prep/test_video_embedders.py`` checks the layout against the transformers
image processor. The prompt is the Qwen chat template with the video in the user turn followed by
``instruction``.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import torch

from cva_rec.errors import ConfigError
from data_prep.frame_encoder_base import FRAME_ENCODERS, FrameEncoder
from data_prep.image_preprocess import CLIP_MEAN, CLIP_STD, read_preprocessor_config

MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")
DEFAULT_INSTRUCTION = "Represent the given video."
WHERE = ("download a GVE checkpoint (e.g. the Hugging Face repo Alibaba-NLP/GVE-3B or GVE-7B) or any Qwen2-VL / "
         "Qwen2.5-VL model on a machine with internet access, copy the folder here and pass it as --checkpoint DIR")
# Qwen's recommended per-frame pixel range for video (qwen-vl-utils VIDEO_MIN/MAX_PIXELS)
VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS = 128 * 28 * 28, 768 * 28 * 28


def patchify_video(frames: np.ndarray, patch: int, merge: int, temporal: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """[F, C, H, W] float32 (H, W multiples of patch * merge) -> ([t * h * w, C * temporal * patch^2], (t, h, w)).

    The transformers Qwen2-VL layout: frames padded to a multiple of ``temporal`` by repeating the
    last one, then (t, h/merge, w/merge, merge, merge) patches, each flattened as (C, temporal, patch, patch).
    """
    if pad := -len(frames) % temporal:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    f, c, h, w = frames.shape
    gt, gh, gw = f // temporal, h // patch, w // patch
    x = frames.reshape(gt, temporal, c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return np.ascontiguousarray(x.reshape(gt * gh * gw, c * temporal * patch * patch)), (gt, gh, gw)


class QwenVLVideoEmbedder(FrameEncoder):
    """Frames of one video -> ``segments`` embeddings from a local Qwen2-VL / Qwen2.5-VL (GVE) checkpoint."""

    name = "qwen2_vl"
    video_level = True
    image_size = 0  # no fixed input size: smart_resize decides per video

    def __init__(self, checkpoint: str | None = None, batch_size: int = 32, device: str = "cpu", segments: int = 1,
                 instruction: str = DEFAULT_INSTRUCTION):
        super().__init__(batch_size, device)
        path = self._checked(checkpoint)
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        config = AutoConfig.from_pretrained(path, local_files_only=True)
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        try:
            self.model = AutoModel.from_pretrained(path, local_files_only=True, dtype=dtype).eval().to(self.device)
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load {self.name} checkpoint {path}: {exc}".splitlines()[0]) from None
        self.model.requires_grad_(False)
        self.config, self.checkpoint = config, str(path)
        self.dim = int(getattr(config, "text_config", config).hidden_size)
        vision = config.vision_config
        self.patch, self.merge, self.temporal = vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size
        pcfg = {**read_preprocessor_config(path), **_json(path / "video_preprocessor_config.json")}
        size = pcfg.get("size") or {}
        self.min_pixels = int(pcfg.get("min_pixels") or size.get("shortest_edge") or VIDEO_MIN_PIXELS)
        self.max_pixels = min(int(pcfg.get("max_pixels") or size.get("longest_edge") or VIDEO_MAX_PIXELS), VIDEO_MAX_PIXELS)
        self.mean = tuple(pcfg.get("image_mean", CLIP_MEAN))
        self.std = tuple(pcfg.get("image_std", CLIP_STD))
        if segments < 1:
            raise ConfigError(f"{self.name}: segments must be >= 1, got {segments}")
        self.segments, self.instruction = int(segments), instruction
        accepted = inspect.signature(self.model.forward).parameters
        self._wants_token_types = "mm_token_type_ids" in accepted
        self._wants_seconds = "second_per_grid_ts" in accepted  # Qwen2.5-VL

    def _checked(self, checkpoint: str | None) -> Path:
        if not checkpoint:
            raise ConfigError(f"video embedder {self.name!r} needs local weights (--checkpoint DIR): {WHERE}")
        path = Path(checkpoint)
        if not (path / "config.json").is_file():
            raise ConfigError(f"{self.name} checkpoint {path} has no config.json: {WHERE}")
        model_type = _json(path / "config.json").get("model_type")
        if model_type not in MODEL_TYPES:
            raise ConfigError(f"{self.name} checkpoint {path} holds a {model_type!r} model, expected {' or '.join(MODEL_TYPES)}")
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise ConfigError(f"{self.name} checkpoint {path} has no weights (*.safetensors): put the model's weight "
                              f"files next to its config.json ({WHERE})")
        return path

    def pixels(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 frames [F, H, W, 3] -> (pixel_values_videos, video_grid_thw [1, 3])."""
        from PIL import Image
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        h, w = frames.shape[1:3]
        rh, rw = smart_resize(h, w, factor=self.patch * self.merge, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        resized = np.stack([np.asarray(Image.fromarray(f).resize((rw, rh), Image.BICUBIC)) for f in frames])
        x = resized.astype(np.float32) / 255.0
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        flat, grid = patchify_video(x.transpose(0, 3, 1, 2), self.patch, self.merge, self.temporal)
        return torch.from_numpy(flat), torch.tensor([grid], dtype=torch.long)

    def prompt_ids(self, n_video_tokens: int) -> torch.Tensor:
        video = "<|vision_start|>" + "<|video_pad|>" * n_video_tokens + "<|vision_end|>"
        text = (f"<|im_start|>user\n{video}{self.instruction}<|im_end|>\n<|im_start|>assistant\n")
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        found = int((ids == self.config.video_token_id).sum())
        if found != n_video_tokens:
            raise ConfigError(f"{self.checkpoint}: the tokenizer does not map <|video_pad|> to the model's "
                              f"video_token_id {self.config.video_token_id}")
        return ids

    @torch.inference_mode()
    def embed(self, frames: np.ndarray, timestamps: np.ndarray | None = None) -> np.ndarray:
        """One video (or segment) -> [dim] float32, L2-normalised last-token hidden state."""
        pixel_values, grid = self.pixels(frames)
        ids = self.prompt_ids(int(grid.prod()) // (self.merge * self.merge))
        inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), video_grid_thw=grid,
                      pixel_values_videos=pixel_values.to(self.model.dtype))
        if self._wants_token_types:  # transformers >= 5 computes M-RoPE from modality ids (2 = video token)
            inputs["mm_token_type_ids"] = (ids == self.config.video_token_id).long() * 2
        if self._wants_seconds and timestamps is not None and len(timestamps) > 1:
            # Qwen2.5-VL aligns temporal positions to seconds: time spanned by one temporal patch of these frames
            spacing = float(timestamps[-1] - timestamps[0]) / (len(timestamps) - 1)
            inputs["second_per_grid_ts"] = torch.tensor([max(spacing, 1e-3) * self.temporal])
        out = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
        last = out.last_hidden_state[0, -1].float()
        return torch.nn.functional.normalize(last, dim=-1).cpu().numpy()

    def encode_video(self, frames: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An item's chosen frames (time order) -> ([segments', dim], segment start times); fewer frames than
        segments give one segment per frame."""
        parts = np.array_split(np.arange(len(frames)), min(self.segments, len(frames)))
        vectors = np.stack([self.embed(frames[p], timestamps[p]) for p in parts])
        return vectors, np.asarray([timestamps[p[0]] for p in parts], dtype=np.float32)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        raise ConfigError(f"{self.name} embeds whole videos (encode_video), not single frames")

    def describe(self) -> dict:
        return {"name": self.name, "dim": self.dim, "checkpoint": self.checkpoint,
                "model_type": self.config.model_type, "segments": self.segments, "instruction": self.instruction,
                "min_pixels": self.min_pixels, "max_pixels": self.max_pixels, "mean": list(self.mean),
                "std": list(self.std), "pooling": "last token, L2-normalised"}


@FRAME_ENCODERS.register("gve")
class GveVideoEmbedder(QwenVLVideoEmbedder):
    name = "gve"


FRAME_ENCODERS.register("qwen2_vl", QwenVLVideoEmbedder)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
