"""Frozen frame encoders: EfficientNet-Lite0 (real shipped weights) and transformers backbones from tiny local checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cva_rec.errors import ConfigError
from data_prep.frame_encoders import FRAME_ENCODERS, build_frame_encoder
from data_prep.image_preprocess import preprocess_frames
from tiny_models import save_tiny_clip, save_tiny_vision


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(1).integers(0, 256, (6, 48, 64, 3), dtype=np.uint8)


def test_registry():
    assert set(FRAME_ENCODERS.names()) >= {"efficientnet_lite0", "dinov2", "dinov3", "vit", "clip", "timm"}
    with pytest.raises(ConfigError, match="unknown frame encoder 'efficientnet'"):
        build_frame_encoder("efficientnet")


def test_efficientnet_lite0_shipped_weights(frames):
    enc = build_frame_encoder("efficientnet_lite0", batch_size=4)
    assert not enc.model.training and not any(p.requires_grad for p in enc.model.parameters())
    out = enc.encode(frames)
    assert out.shape == (6, 1280) and out.dtype == np.float32 and np.isfinite(out).all()
    # batching does not change an item's features (beyond float noise)
    np.testing.assert_allclose(enc.encode(frames[:1]), out[:1], rtol=1e-4, atol=1e-4)
    # same as the package's own model on the same preprocessed input
    x = preprocess_frames(frames, 224, enc.mean, enc.std)
    with torch.inference_mode():
        ref = enc.model.extract_features(x).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["dinov2", "dinov3", "vit"])
def test_transformers_backbones_from_local_dir(tmp_path, frames, family):
    path = save_tiny_vision(tmp_path / family, family)
    enc = build_frame_encoder(family, checkpoint=str(path), batch_size=4)
    out = enc.encode(frames)
    assert out.shape == (6, 32) and enc.dim == 32 and enc.image_size == 32
    with torch.inference_mode():
        ref = enc.model(pixel_values=preprocess_frames(frames, 32, enc.mean, enc.std)).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    other = "vit" if family != "vit" else "dinov2"
    with pytest.raises(ConfigError, match="expected"):
        build_frame_encoder(other, checkpoint=str(path))


def test_clip_vision_from_full_clip_checkpoint(tmp_path, frames):
    path = save_tiny_clip(tmp_path / "clip")
    enc = build_frame_encoder("clip", checkpoint=str(path))
    out = enc.encode(frames)
    assert out.shape == (6, 16) and enc.dim == 16  # projection_dim


def test_missing_checkpoints_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs a local checkpoint"):
        build_frame_encoder("dinov2")
    with pytest.raises(ConfigError, match="no config.json"):
        build_frame_encoder("vit", checkpoint=str(tmp_path))
    with pytest.raises(ConfigError, match="do not exist"):
        build_frame_encoder("efficientnet_lite0", checkpoint=str(tmp_path / "none.pth"))
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="timm package"):
            build_frame_encoder("timm", model_name="resnet18", checkpoint="x")
