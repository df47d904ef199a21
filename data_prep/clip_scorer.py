"""Title-guided key-frame selection: CLIP image-title similarity over a video's candidates.

The CLIP model comes from a LOCAL checkpoint (nothing is downloaded):

* a directory with ``config.json`` -> transformers ``CLIPModel`` + its tokenizer;
* a weights file (``.pt``/``.bin``/``.safetensors``) + ``model_name`` -> ``open_clip``
  (only if installed; otherwise a ConfigError says so).

Without a usable checkpoint, asking for title selection is a :class:`ConfigError`, never a
silent fallback to another sampler.

Title-robustness settings of the paper's Table 7 (``title_mode``):

* ``clean``       the item's own title;
* ``none``        no title: frames are sampled at random (the paper's "randomly sampled frames");
* ``noisy``       Gaussian noise (std ``noise_std`` per component) added to the normalised
                  text embedding, then re-normalised;
* ``mismatched``  the title of another item, drawn deterministically per item from the pool;
* ``masked``      ``mask_ratio`` (50%) of the title's words removed, chosen deterministically per item.
All randomness is seeded by (seed, item id), so a resumed extraction picks the same frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cva_rec.errors import ConfigError
from data_prep.image_preprocess import CLIP_MEAN, CLIP_STD, crop_size_from, preprocess_frames, read_preprocessor_config
from data_prep.samplers import item_seed, sample_random, sample_title

TITLE_MODES = ("clean", "none", "noisy", "mismatched", "masked")


class ClipTitleScorer:
    """Cosine similarity between each frame and a title, with a frozen local CLIP model."""

    def __init__(self, checkpoint: str | Path | None, *, model_name: str | None = None, device: str = "cpu",
                 batch_size: int = 50):
        if not checkpoint:
            raise ConfigError("title-guided frame selection needs a local CLIP checkpoint (--clip-checkpoint); "
                              "none was given and nothing can be downloaded")
        path = Path(checkpoint)
        if not path.exists():
            raise ConfigError(f"CLIP checkpoint {path} does not exist")
        self.device = torch.device(device)
        self.batch_size = batch_size
        if path.is_dir():
            self._load_transformers(path)
        else:
            self._load_open_clip(path, model_name)

    # -- loading -----------------------------------------------------------------------------
    def _load_transformers(self, path: Path) -> None:
        from transformers import AutoTokenizer, CLIPModel

        if not (path / "config.json").is_file():
            raise ConfigError(f"CLIP checkpoint directory {path} has no config.json (expected a transformers CLIPModel)")
        try:
            model = CLIPModel.from_pretrained(path, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load CLIP checkpoint {path}: {exc}".splitlines()[0]) from None
        self.model = model.eval().to(self.device)
        pcfg = read_preprocessor_config(path)
        self.image_size = crop_size_from(pcfg, model.config.vision_config.image_size)
        self.mean = tuple(pcfg.get("image_mean", CLIP_MEAN))
        self.std = tuple(pcfg.get("image_std", CLIP_STD))
        max_len = model.config.text_config.max_position_embeddings

        def encode_text(titles: list[str]) -> torch.Tensor:
            tok = tokenizer(titles, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
            return _as_tensor(self.model.get_text_features(**{k: v.to(self.device) for k, v in tok.items()}))

        def encode_image(x: torch.Tensor) -> torch.Tensor:
            return _as_tensor(self.model.get_image_features(pixel_values=x.to(self.device)))

        self._encode_text, self._encode_image = encode_text, encode_image

    def _load_open_clip(self, path: Path, model_name: str | None) -> None:
        try:
            import open_clip
        except ImportError:
            raise ConfigError(f"CLIP checkpoint {path} is a weights file, which needs the open_clip package "
                              "(not installed); pip install open_clip_torch, or give a transformers CLIP directory") from None
        if not model_name:
            raise ConfigError(f"open_clip checkpoint {path} needs --clip-model-name (e.g. ViT-B-32)")
        model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=str(path))
        tokenizer = open_clip.get_tokenizer(model_name)
        self.model = model.eval().to(self.device)
        size = model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean = tuple(getattr(model.visual, "image_mean", None) or CLIP_MEAN)
        self.std = tuple(getattr(model.visual, "image_std", None) or CLIP_STD)
        self._encode_text = lambda titles: self.model.encode_text(tokenizer(titles).to(self.device))
        self._encode_image = lambda x: self.model.encode_image(x.to(self.device))

    # -- scoring -----------------------------------------------------------------------------
    @torch.inference_mode()
    def text_embeddings(self, titles: Sequence[str]) -> torch.Tensor:
        """[n, d] L2-normalised title embeddings (float32, cpu)."""
        emb = self._encode_text(list(titles)).float().cpu()
        return torch.nn.functional.normalize(emb, dim=-1)

    @torch.inference_mode()
    def image_embeddings(self, frames: np.ndarray) -> torch.Tensor:
        """[K, d] L2-normalised frame embeddings (float32, cpu), computed in batches."""
        out = []
        for start in range(0, len(frames), self.batch_size):
            x = preprocess_frames(frames[start:start + self.batch_size], self.image_size, self.mean, self.std)
            out.append(self._encode_image(x).float().cpu())
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    def scores(self, frames: np.ndarray, text_embedding: torch.Tensor) -> np.ndarray:
        """Cosine similarity of each frame with one (normalised) text embedding: [K] float32."""
        return (self.image_embeddings(frames) @ text_embedding.reshape(-1)).numpy().astype(np.float32)


def _as_tensor(out) -> torch.Tensor:
    """transformers 5 may return a model output object; take its pooled embedding tensor."""
    if isinstance(out, torch.Tensor):
        return out
    for key in ("text_embeds", "image_embeds", "pooler_output"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected CLIP output {type(out).__name__}")


def mask_words(title: str, ratio: float, rng: np.random.Generator) -> str:
    """Remove round(ratio * n_words) words (at least one if the title has two or more)."""
    words = title.split()
    n_mask = int(round(ratio * len(words)))
    if len(words) >= 2:
        n_mask = max(1, n_mask)
    drop = set(rng.choice(len(words), size=min(n_mask, len(words)), replace=False).tolist()) if words else set()
    return " ".join(w for i, w in enumerate(words) if i not in drop)


@dataclass
class TitleFrameSelector:
    """Chooses N key frames of a video from its title, under one of the Table 7 title settings.

    ``scorer`` may be None only for ``title_mode="none"`` (random frames need no CLIP).
    ``title_pool`` (all titles of the dataset) is required for ``mismatched``.
    """

    scorer: ClipTitleScorer | None
    title_mode: str = "clean"
    noise_std: float = 0.05
    mask_ratio: float = 0.5
    seed: int = 0
    title_pool: Sequence[tuple[str, str]] | None = None  # (item_id, title)

    def __post_init__(self) -> None:
        if self.title_mode not in TITLE_MODES:
            raise ConfigError(f"unknown title mode {self.title_mode!r}; use one of {', '.join(TITLE_MODES)}")
        if self.title_mode != "none" and self.scorer is None:
            raise ConfigError(f"title mode {self.title_mode!r} needs a CLIP checkpoint (--clip-checkpoint)")
        if self.title_mode == "mismatched" and not self.title_pool:
            raise ConfigError("title mode 'mismatched' needs the titles of other items (--titles)")
        if not 0.0 <= self.mask_ratio <= 1.0:
            raise ConfigError(f"mask_ratio must be in [0, 1], got {self.mask_ratio}")

    def effective_title(self, item_id: str, title: str) -> str:
        """The text actually scored for this item (after mismatching / masking)."""
        rng = np.random.default_rng(item_seed(self.seed, f"title:{item_id}"))
        if self.title_mode == "mismatched":
            pool = self.title_pool or []
            for _ in range(100):  # skip the item itself (and identical titles) when possible
                other_id, other = pool[int(rng.integers(len(pool)))]
                if other_id != item_id and other != title:
                    return other
            return other
        if self.title_mode == "masked":
            return mask_words(title, self.mask_ratio, rng)
        return title

    def text_embedding(self, item_id: str, title: str) -> torch.Tensor:
        assert self.scorer is not None
        emb = self.scorer.text_embeddings([self.effective_title(item_id, title)])[0]
        if self.title_mode == "noisy":
            gen = torch.Generator().manual_seed(item_seed(self.seed, f"noise:{item_id}") % (2**63))
            emb = torch.nn.functional.normalize(emb + self.noise_std * torch.randn(emb.shape, generator=gen), dim=-1)
        return emb

    def select(self, item_id: str, title: str, frames: np.ndarray, n: int) -> np.ndarray:
        """Ascending indices of the N chosen candidates."""
        if self.title_mode == "none":
            return sample_random(len(frames), n, item_id=item_id, seed=self.seed)
        scores = self.scorer.scores(frames, self.text_embedding(item_id, title))
        return sample_title(len(frames), n, item_id=item_id, seed=self.seed, scores=scores)
