"""Codec saliency (motion vectors + residual) and the ``codec`` sampler, on real H.264 clips and synthetic videos."""
from __future__ import annotations

import json

import numpy as np
import pytest

from synthetic_video import W, write_video
from video_test_data import clips_dir, microlens_dir  # noqa: F401  (fixtures)
from cva_rec.errors import ConfigError
from data_prep.codec import (_MV_DTYPE, CodecCandidates, _MotionField, decode_codec_candidates,
                             motion_compensated_residual)
from data_prep.extract import VideoExtractConfig, extract_video_features
from data_prep.samplers import sample_codec


def test_motion_vectors_read_from_a_real_h264_clip(clips_dir):
    import av

    with av.open(str(clips_dir / "bikes.mp4")) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in container.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            if side is not None:
                mvs = side.to_ndarray()
                break
    assert stream.codec_context.name == "h264" and len(mvs) > 100
    assert (np.hypot(mvs["motion_x"], mvs["motion_y"]) > 0).any()
    cand = decode_codec_candidates(clips_dir / "bikes.mp4")
    assert isinstance(cand, CodecCandidates) and cand.mode == "motion+residual"
    assert cand.motion[~cand.intra].max() > 1.0  # the camera follows the bikes: pixels of motion per frame
    assert cand.intra.sum() >= 1 and len(cand) >= 100  # 100 segment middles + the I-frames
    assert np.all(np.diff(cand.timestamps) > 0)


def test_motion_field_paints_a_block_hand_computed():
    mv = np.zeros(2, _MV_DTYPE)
    # 16x16 block centred at (8, 8), past reference, motion (8, -4) / 4 = (2, -1) native px
    mv[0] = (-1, 16, 16, 10, 7, 8, 8, 0, 8, -4, 4)
    # 8x8 block centred at (20, 20), future reference, motion (0, 12) / 4 = (0, 3)
    mv[1] = (1, 8, 8, 20, 23, 20, 20, 0, 0, 12, 4)
    f = _MotionField(32, 32, 64, 64)  # output twice the native size: vectors double
    mag, dx, dy = f.paint(mv)
    assert mag[:32, :32] == pytest.approx(np.hypot(4, -2))
    assert mag[32:48, 32:48] == pytest.approx(6.0)
    assert mag[48:, :].max() == 0 and mag[:32, 32:].max() == 0
    assert dx[:32, :32] == pytest.approx(4) and dy[:32, :32] == pytest.approx(-2)
    assert dx[32:48, 32:48].max() == 0 and dy[32:48, 32:48].max() == 0  # future reference: no warp


def test_motion_compensation_explains_a_shift():
    rng = np.random.default_rng(0)
    prev = rng.integers(0, 255, size=(40, 40), dtype=np.uint8)
    cur = np.roll(prev, -3, axis=1)  # content moved 3 px left: cur[y, x] = prev[y, x + 3]
    zero = np.zeros((40, 40), np.float32)
    compensated = motion_compensated_residual(cur, prev, zero + 3, zero)
    assert compensated[:, :37].max() == 0
    assert motion_compensated_residual(cur, prev, zero, zero).mean() > 50


def test_static_video_near_zero_moving_video_high(tmp_path):
    static = decode_codec_candidates(write_video(tmp_path / "static.mp4", "static"), short_side=None)
    moving = decode_codec_candidates(write_video(tmp_path / "moving.mp4", "moving"), short_side=None, keep_maps=True)
    assert static.mode == moving.mode == "motion+residual"
    assert static.saliency.max() < 0.05 and static.motion.max() < 0.05
    inter = ~moving.intra
    # the square is 8% of the frame and moves 3 px/frame: ~0.25 px mean motion over the frame
    assert moving.saliency[inter].mean() > 0.3 and moving.motion[inter].mean() > 0.15
    # the map is high on the moving square and ~0 on the static background below it
    i = int(np.flatnonzero(inter)[5])
    t = int(round(moving.timestamps[i] * 25))
    square = moving.maps[i][30:62, 4 + 3 * t:4 + 3 * t + 32].astype(np.float32)
    assert square.mean() > 1.0 and moving.maps[i][70:].astype(np.float32).mean() < 0.1


def test_codec_sampler_keeps_i_frames_then_the_most_salient():
    scores = np.array([0.0, 0.5, 0.9, 0.1, 0.0, 0.8, 0.7, 0.2])
    intra = np.array([1, 0, 0, 0, 1, 0, 0, 0], bool)
    np.testing.assert_array_equal(sample_codec(8, 4, scores=scores, intra=intra), [0, 2, 4, 5])
    np.testing.assert_array_equal(sample_codec(8, 2, scores=scores, intra=intra), [0, 4])
    np.testing.assert_array_equal(sample_codec(8, 1, scores=scores, intra=intra), [4])  # uniform among I-frames
    np.testing.assert_array_equal(sample_codec(8, 20, scores=scores, intra=intra), np.arange(8))
    with pytest.raises(ConfigError, match="needs codec saliency"):
        sample_codec(8, 2)


def test_i_frames_always_kept_in_the_store(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "moving.mp4", "moving", n_frames=60, gop=20)  # I-frames at 0, 20, 40
    cand = decode_codec_candidates(videos / "moving.mp4")
    i_times = cand.timestamps[cand.intra]
    assert len(i_times) == 3
    report = extract_video_features(videos, tmp_path / "store", VideoExtractConfig(sampler="codec", n_frames=6,
                                                                                   dtype="float32"), progress=False)
    from cva_rec.features import open_store

    store = open_store(report.path)
    feats, stamps = store.get("moving")
    assert len(stamps) == 6 and set(np.round(i_times, 4)) <= set(np.round(stamps, 4))
    assert np.all(np.diff(stamps) > 0)
    assert store.meta["codec_saliency"]["modes_by_codec"] == {"h264": ["motion+residual"]}
    assert store.meta["codec_saliency"]["uniform_fallback"] == []


def test_intra_only_video_falls_back_to_uniform_with_a_note(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "allintra.mp4", "intra", n_frames=30)
    write_video(videos / "moving.mp4", "moving", n_frames=30)
    cand = decode_codec_candidates(videos / "allintra.mp4")
    assert cand.mode == "uniform" and cand.intra.all() and "uniform fallback" in cand.notes[-1]
    report = extract_video_features(videos, tmp_path / "store", VideoExtractConfig(sampler="codec", n_frames=5),
                                    progress=False)
    meta = json.loads((report.path / "meta.json").read_text())
    assert meta["codec_saliency"]["uniform_fallback"] == ["allintra"]
    assert "intra-only" in meta["codec_saliency"]["uniform_fallback_reason"][0]
    from cva_rec.features import open_store

    _, stamps = open_store(report.path).get("allintra")
    np.testing.assert_allclose(stamps, cand.timestamps[[3, 9, 15, 21, 27]])  # uniform over 30 candidates


def test_hevc_without_motion_vectors_uses_the_residual(microlens_dir):
    cand = decode_codec_candidates(microlens_dir / "10034.mp4")
    assert cand.codec == "hevc" and cand.mode == "residual" and cand.motion.max() == 0
    assert cand.residual[~cand.intra].max() > 1.0 and "exports no motion vectors" in cand.notes[-1]


def test_width_of_synthetic_video_is_what_the_tests_assume(tmp_path):
    cand = decode_codec_candidates(write_video(tmp_path / "s.mp4", "static", n_frames=3), short_side=None)
    assert cand.frames.shape[2] == W


def test_prep_frames_codec_sampler_cli(tmp_path, clips_dir):
    from data_prep.cli_video import main

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "bikes.mp4").symlink_to(clips_dir / "bikes.mp4")
    write_video(videos / "allintra.mp4", "intra", n_frames=20)
    assert main(["prep-frames", "--videos", str(videos), "--sampler", "codec", "--n-frames", "8",
                 "--out", str(tmp_path / "frames")]) == 0
    manifest = json.loads((tmp_path / "frames" / "manifest.json").read_text())
    bikes = manifest["items"]["bikes"]
    assert bikes["codec_mode"] == "motion+residual" and len(bikes["files"]) == 8
    assert sum(bikes["intra"]) == int(decode_codec_candidates(clips_dir / "bikes.mp4").intra.sum())
    assert manifest["items"]["allintra"]["codec_mode"] == "uniform"
