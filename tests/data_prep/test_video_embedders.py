"""Video-level embedders (GVE slot): tiny randomly initialised Qwen2-VL / Qwen2.5-VL checkpoints end to end."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from synthetic_video import write_video
from tiny_models import save_tiny_qwen2_vl
from cva_rec.errors import ConfigError
from cva_rec.features import open_store
from data_prep.extract import VideoExtractConfig, extract_video_features
from data_prep.frame_encoders import build_frame_encoder

pytest.importorskip("transformers", reason="the GVE slot loads Qwen2-VL models through transformers")


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    return {mt: save_tiny_qwen2_vl(tmp_path_factory.mktemp(mt), mt) for mt in ("qwen2_vl", "qwen2_5_vl")}


def test_video_input_layout_matches_the_transformers_processor(tiny_qwen):
    from transformers import Qwen2VLImageProcessor

    enc = build_frame_encoder("gve", checkpoint=str(tiny_qwen["qwen2_vl"]))
    frame = np.random.default_rng(0).integers(0, 255, (90, 150, 3), dtype=np.uint8)
    ours, grid = enc.pixels(frame[None])  # one frame, repeated to fill the temporal patch, as for an image
    hf = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112)(images=[frame], return_tensors="np")
    assert grid.tolist() == hf["image_grid_thw"].tolist()
    np.testing.assert_allclose(ours.numpy(), hf["pixel_values"], atol=1e-5)


@pytest.mark.parametrize("encoder,model_type", [("gve", "qwen2_vl"), ("qwen2_vl", "qwen2_5_vl")])
def test_gve_end_to_end_one_vector_per_segment(tmp_path, tiny_qwen, encoder, model_type):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "moving.mp4", "moving", n_frames=30)
    write_video(videos / "static.mp4", "static", n_frames=30)
    cfg = VideoExtractConfig(sampler="uniform", n_frames=6, encoder=encoder, dtype="float32",
                             encoder_checkpoint=str(tiny_qwen[model_type]), video_segments=2)
    store = open_store(extract_video_features(videos, tmp_path / "store", cfg, progress=False).path)
    assert store.dim == 32 and store.max_frames == 2 and store.meta["encoder"] == encoder
    assert store.meta["encoder_config"]["model_type"] == model_type
    feats, stamps = store.get("moving")
    assert feats.shape == (2, 32) and np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-5)
    assert stamps[0] < stamps[1]  # each segment is stamped with its first frame
    assert not np.allclose(feats, store.get("static")[0])
    one = build_frame_encoder(encoder, checkpoint=str(tiny_qwen[model_type]), segments=1)
    whole, _ = one.encode_video(np.stack([np.zeros((72, 128, 3), np.uint8)] * 3), np.arange(3.0))
    assert whole.shape == (1, 32)


def test_missing_or_wrong_weights_say_where_to_put_them(tmp_path, tiny_qwen):
    with pytest.raises(ConfigError, match="needs local weights.*--checkpoint DIR.*GVE"):
        build_frame_encoder("gve")
    with pytest.raises(ConfigError, match="has no config.json"):
        build_frame_encoder("gve", checkpoint=str(tmp_path))
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(tiny_qwen["qwen2_vl"] / "config.json", no_weights / "config.json")
    with pytest.raises(ConfigError, match="has no weights.*safetensors"):
        build_frame_encoder("gve", checkpoint=str(no_weights))
    (no_weights / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ConfigError, match="holds a 'llama' model"):
        build_frame_encoder("gve", checkpoint=str(no_weights))
    with pytest.raises(ConfigError, match="embeds whole videos"):
        build_frame_encoder("gve", checkpoint=str(tiny_qwen["qwen2_vl"])).encode(np.zeros((1, 8, 8, 3), np.uint8))
