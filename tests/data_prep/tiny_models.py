"""Tiny randomly initialised transformers checkpoints, saved to a directory, for real-loading tests.

No weights can be downloaded here; these exercise the same ``from_pretrained`` code paths
that a real local DINOv2/DINOv3/ViT/CLIP checkpoint goes through.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_VISION = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                   image_size=32, patch_size=8)


def save_tiny_tokenizer(path: Path) -> None:
    """A CLIP BPE tokenizer with a character vocabulary (no merges): enough to tokenise any ASCII title."""
    from transformers import CLIPTokenizer

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789#!?.,'")
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    for t in ("<|startoftext|>", "<|endoftext|>"):
        vocab[t] = len(vocab)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt")).save_pretrained(path)


def save_tiny_clip(path: Path, seed: int = 0) -> Path:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    save_tiny_tokenizer(path)
    from transformers import CLIPTokenizer
    vocab_size = len(CLIPTokenizer.from_pretrained(path))
    cfg = CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=77,
                         bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1),
        vision_config=dict(TINY_VISION),
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(path)
    return path


def save_tiny_vision(path: Path, family: str, seed: int = 0) -> Path:
    """family: dinov2 | dinov3 | vit."""
    import transformers as t

    torch.manual_seed(seed)
    if family == "dinov2":
        model = t.Dinov2Model(t.Dinov2Config(**TINY_VISION))
    elif family == "dinov3":
        model = t.DINOv3ViTModel(t.DINOv3ViTConfig(**TINY_VISION))
    elif family == "vit":
        model = t.ViTModel(t.ViTConfig(**TINY_VISION), add_pooling_layer=False)
    else:
        raise ValueError(family)
    model.save_pretrained(path)
    return path
