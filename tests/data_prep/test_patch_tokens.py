"""Codec patch tokens: patch saliency on the encoder's grid, I-frames whole, salient P-frame patches at a budget."""
from __future__ import annotations

import numpy as np
import pytest

from synthetic_video import write_video
from cva_rec.errors import ConfigError
from cva_rec.features.tokens import open_token_store
from data_prep.extract import VideoExtractConfig, extract_video_features
from data_prep.patch_tokens import TokenBudget, patch_saliency, select_tokens


def test_select_tokens_hand_computed():
    intra = np.array([True, False, False])
    scores = np.array([[0, 0, 0, 0], [0.9, 0.1, 0.0, 0.5], [0.2, 0.8, 0.7, 0.0]])
    # budget 6, P0 = 4: one whole I-frame (4 tokens), then 2 patches; at most 50% = 2 per inter frame
    keep = select_tokens(intra, scores, TokenBudget(budget=6, patch_ratio=0.5, i_share=0.25))
    assert keep.tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [2, 1]]
    # larger budget: the per-frame cap binds (frame 1: 0.9, 0.5; frame 2: 0.8, 0.7); scores < 0.1 never kept
    keep = select_tokens(intra, scores, TokenBudget(budget=12, patch_ratio=0.5))
    assert keep.tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 3], [2, 1], [2, 2]]
    with pytest.raises(ConfigError, match="smaller than one frame's 4 patches"):
        select_tokens(intra, scores, TokenBudget(budget=3))


def test_more_i_frames_than_their_share_are_spread():
    intra = np.array([True, True, True, True, False])
    scores = np.zeros((5, 4))
    scores[4] = [1, 2, 3, 4]
    keep = select_tokens(intra, scores, TokenBudget(budget=32, patch_ratio=0.25, i_share=0.25))  # 8 tokens: 2 I-frames
    assert sorted(set(keep[keep[:, 0] < 4, 0].tolist())) == [1, 3]  # centres of 2 equal parts of 4 and keep[-1].tolist() == [4, 3]


def test_patch_saliency_follows_the_encoder_crop():
    maps = np.zeros((1, 100, 200), np.float32)  # landscape: resize to 112 x 224 then center crop 112 x 112
    maps[0, :, 100:125] = 1.0  # a vertical stripe right of the centre
    grid = patch_saliency(maps, 112, (4, 4)).reshape(4, 4)
    # x 100..125 -> 112..140 resized -> 56..84 after the crop (left 56) = exactly column 2 of 28-px patches
    np.testing.assert_allclose(grid, np.tile([0.0, 0.0, 1.0, 0.0], (4, 1)), atol=1e-6)


def test_static_video_keeps_its_i_frame_moving_video_its_moving_patches(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "static.mp4", "static", n_frames=40, gop=40)
    write_video(videos / "moving.mp4", "moving", n_frames=40, gop=40)
    cfg = VideoExtractConfig(sampler="codec", n_frames=8, patch_tokens=True, token_budget=128, dtype="float32")
    report = extract_video_features(videos, tmp_path / "tokens", cfg, progress=False)
    store = open_token_store(report.path)
    assert store.grid == (7, 7) and store.store.max_frames == 128
    s_feats, s_stamps, s_pos = store.get("static")
    m_feats, m_stamps, m_pos = store.get("moving")
    assert len(s_feats) == 49 and (s_pos[:, 0] == 0).all()  # the one I-frame, whole; no static patch kept
    assert 49 < len(m_feats) <= 128 and (m_pos[:49, 0] == 0).all() and (m_pos[49:, 0] > 0).all()
    # kept patches lie on the square's rows (y 30..62 of 96 -> crop rows 2..4 of 7)
    rows = m_pos[49:, 1] // 7
    assert np.isin(rows, [1, 2, 3, 4, 5]).mean() > 0.9
    # a token is the encoder's patch feature at its position in its frame
    from data_prep.codec import decode_codec_candidates
    from data_prep.frame_encoders import build_frame_encoder

    cand = decode_codec_candidates(videos / "moving.mp4")
    frame_slot, patch = m_pos[60]
    frame = cand.frames[np.flatnonzero(np.isclose(cand.timestamps, m_stamps[60]))[0]]
    expected = build_frame_encoder("efficientnet_lite0").encode_patches(frame[None])[0, patch]
    np.testing.assert_allclose(m_feats[60], expected, rtol=1e-4, atol=1e-4)


def test_patch_tokens_need_the_codec_sampler(tmp_path):
    from data_prep.cli_video import main

    write_video(tmp_path / "v.mp4", "static", n_frames=5)
    assert main(["extract-video", "--videos", str(tmp_path), "--sampler", "uniform", "--patch-tokens",
                 "--out", str(tmp_path / "s")]) == 2
    with pytest.raises(ConfigError, match="use --sampler codec"):
        extract_video_features(tmp_path, tmp_path / "s", VideoExtractConfig(sampler="mid5", patch_tokens=True))
