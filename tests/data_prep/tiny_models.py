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


QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]


def save_tiny_qwen_tokenizer(path: Path) -> dict[str, int]:
    """A word-level tokenizer with Qwen's chat and vision special tokens (enough for the embedder's prompt)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "user", "assistant", "represent", "the", "given", "video", "describe", ".", "\n"]
    vocab = {w: i for i, w in enumerate(words + QWEN_SPECIAL)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(QWEN_SPECIAL)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<|endoftext|>",
                                   eos_token="<|im_end|>")
    path.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(path)
    return vocab


def save_tiny_qwen2_vl(path: Path, model_type: str = "qwen2_vl", seed: int = 0) -> Path:
    """A randomly initialised Qwen2-VL / Qwen2.5-VL of the real architecture (1 layer each side, 32-d)."""
    import transformers as t

    torch.manual_seed(seed)
    vocab = save_tiny_qwen_tokenizer(path)
    text = dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1, intermediate_size=64, bos_token_id=vocab["<|endoftext|>"],
                eos_token_id=vocab["<|im_end|>"], rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
    ids = dict(image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
               vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    if model_type == "qwen2_vl":
        vision = dict(depth=1, embed_dim=16, hidden_size=32, num_heads=2, patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2)
        model = t.Qwen2VLModel(t.Qwen2VLConfig(text_config=text, vision_config=vision, **ids))
    else:
        vision = dict(depth=1, hidden_size=16, out_hidden_size=32, intermediate_size=32, num_heads=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, fullatt_block_indexes=[0], window_size=56)
        model = t.Qwen2_5_VLModel(t.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids))
    model.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps(
        {"min_pixels": 56 * 56, "max_pixels": 112 * 112, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
         "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}))
    return path
