"""Distributed extraction: deterministic disjoint shards, per-shard resume, merge-stores validation and byte identity."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from synthetic_video import write_video
from video_test_data import clips_dir  # noqa: F401  (fixture)
from cva_rec.errors import ConfigError, FeatureStoreError
from cva_rec.features import partial_path
from data_prep import extract as extract_mod
from data_prep.extract import VideoExtractConfig, extract_video_features
from data_prep.merge_stores import merge_stores
from data_prep.shards import shard_from_env, shard_rows, shard_store_path, shards_dir


@pytest.mark.parametrize("n,count", [(5, 2), (7, 3), (100, 7), (3, 3)])
def test_shards_are_disjoint_balanced_and_cover(n, count):
    shards = [shard_rows(n, i, count) for i in range(count)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(n))  # disjoint and covering
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shard_rows(n, 0, count).tolist() == list(range(0, n, count))  # round-robin, same in every process
    with pytest.raises(ConfigError, match="every shard needs at least one video"):
        shard_rows(2, 0, 3)


def test_shard_from_launcher_environment():
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "4"}) == (1, 4)
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}) == (2, 3)
    assert shard_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}) == (0, 2)
    with pytest.raises(ConfigError, match="no launcher variables"):
        shard_from_env({})
    with pytest.raises(ConfigError, match="shard index must be in"):
        shard_from_env({"RANK": "4", "WORLD_SIZE": "4"})


@pytest.fixture
def videos(tmp_path, clips_dir):
    d = tmp_path / "videos"
    d.mkdir()
    write_video(d / "a_static.mp4", "static", n_frames=30)
    write_video(d / "b_moving.mp4", "moving", n_frames=30)
    write_video(d / "c_intra.mp4", "intra", n_frames=20)
    (d / "d_carphone.mp4").symlink_to(clips_dir / "carphone_pristine.mp4")
    (d / "e_broken.mp4").write_bytes(b"\x00" * 64)
    return d


def _same_bytes(a, b):
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("tokens", [False, True], ids=["frames", "patch-tokens"])
def test_killed_shard_resumes_and_merge_equals_single_process(tmp_path, videos, monkeypatch, tokens):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cfg = VideoExtractConfig(sampler="codec", n_frames=4, patch_tokens=tokens, token_budget=64)
    single = extract_video_features(videos, tmp_path / "single", cfg, batch_items=2, progress=False).path

    out = tmp_path / "sharded"
    real_write = extract_mod.StoreSink.write
    calls = []

    def dies_on_second_batch(self, items, encoded):
        calls.append(len(items))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed mid-way")
        real_write(self, items, encoded)

    monkeypatch.setattr(extract_mod.StoreSink, "write", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        extract_video_features(videos, out, cfg, batch_items=1, progress=False, shard=(0, 2))
    monkeypatch.setattr(extract_mod.StoreSink, "write", real_write)
    shard0 = shard_store_path(out, 0, 2)
    assert partial_path(shard0).exists() and not shard0.exists()

    with pytest.raises(FeatureStoreError, match="unfinished"):
        merge_stores([shards_dir(out)], out)
    resumed = extract_video_features(videos, out, cfg, batch_items=1, progress=False, shard=(0, 2))
    assert resumed.n_done_before == 1 and resumed.n_items == 3  # rows 0, 2, 4 of 5
    # shard 1 decodes in a DataLoader worker process
    extract_video_features(videos, out, cfg, batch_items=2, progress=False, shard=(1, 2), num_workers=1)

    merged = merge_stores([shards_dir(out)], out)
    _same_bytes(merged, single)


def test_merge_refuses_missing_overlapping_and_foreign_shards(tmp_path, videos, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cfg = VideoExtractConfig(sampler="uniform", n_frames=2)
    out = tmp_path / "s"
    for i in range(3):
        extract_video_features(videos, out, cfg, progress=False, shard=(i, 3))
    parts = [shard_store_path(out, i, 3) for i in range(3)]
    with pytest.raises(FeatureStoreError, match=r"missing shards: 1 of 3 absent, indices \[1\]"):
        merge_stores([parts[0], parts[2]], tmp_path / "m")
    twin = tmp_path / "twin"
    shutil.copytree(parts[0], twin)
    with pytest.raises(FeatureStoreError, match="overlapping shards: index 0 given twice"):
        merge_stores([*parts, twin], tmp_path / "m")
    other = tmp_path / "other"
    extract_video_features(videos, other, VideoExtractConfig(sampler="mid5", n_frames=2), progress=False, shard=(1, 3))
    with pytest.raises(FeatureStoreError, match="different extraction.*sampler"):
        merge_stores([parts[0], shard_store_path(other, 1, 3), parts[2]], tmp_path / "m")
    two = tmp_path / "two"
    extract_video_features(videos, two, cfg, progress=False, shard=(1, 2))
    with pytest.raises(FeatureStoreError, match="different shard counts"):
        merge_stores([*parts, shard_store_path(two, 1, 2)], tmp_path / "m")
    single = extract_video_features(videos, tmp_path / "single", cfg, progress=False).path
    with pytest.raises(FeatureStoreError, match="not a shard store"):
        merge_stores([single], tmp_path / "m")
    assert not (tmp_path / "m").exists()
    np.testing.assert_array_equal(np.load(merge_stores(parts, tmp_path / "m") / "num_frames.npy"),
                                  np.load(single / "num_frames.npy"))


def test_merge_stores_cli(tmp_path, videos, monkeypatch, capsys):
    from data_prep.cli_merge import main

    cfg = VideoExtractConfig(sampler="uniform", n_frames=2)
    extract_video_features(videos, tmp_path / "s", cfg, progress=False, shard=(0, 2))
    assert main(["merge-stores", str(shards_dir(tmp_path / "s")), "--out", str(tmp_path / "m")]) == 2
    assert "missing shards" in capsys.readouterr().err
    extract_video_features(videos, tmp_path / "s", cfg, progress=False, shard=(1, 2))
    assert main(["merge-stores", str(shards_dir(tmp_path / "s")), "--out", str(tmp_path / "m")]) == 0
    assert "5 items" in capsys.readouterr().out


def test_sigkilled_shard_process_resumes_and_merges_to_the_single_run(tmp_path, clips_dir, monkeypatch):
    """The real thing: `extract-video --shard-index 0 --num-shards 2` SIGKILLed mid-way, rerun, merged."""
    import os
    import subprocess
    import sys

    from video_test_data import REPO, kill_after_rows
    from cva_rec.features.store import PROGRESS_FILE

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("bikes", "carphone_pristine", "carphone_distorted", "bigbuckbunny"):
        for copy in ("a", "b"):
            (videos / f"{name}_{copy}.mp4").symlink_to(clips_dir / f"{name}.mp4")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "sharded"
    proc = subprocess.Popen([sys.executable, "-m", "data_prep.cli_video", "extract-video", "--videos", str(videos),
                             "--sampler", "uniform", "--n-frames", "3", "--batch-items", "1", "--quiet", "--out", str(out),
                             "--shard-index", "0", "--num-shards", "2"],
                            cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = kill_after_rows(proc, partial_path(shard_store_path(out, 0, 2)) / PROGRESS_FILE, 4, 1)
    assert 1 <= done < 4 and not shard_store_path(out, 0, 2).exists()
    cfg = VideoExtractConfig(sampler="uniform", n_frames=3)
    resumed = extract_video_features(videos, out, cfg, batch_items=1, progress=False, shard=(0, 2))
    assert resumed.n_done_before >= 1
    extract_video_features(videos, out, cfg, batch_items=3, progress=False, shard=(1, 2))
    single = extract_video_features(videos, tmp_path / "single", cfg, progress=False).path
    _same_bytes(merge_stores([shards_dir(out)], out), single)


def test_shard_options_on_the_command_line(tmp_path, videos, monkeypatch, capsys):
    from data_prep.cli_video import main

    base = ["extract-video", "--videos", str(videos), "--sampler", "uniform", "--n-frames", "2", "--quiet",
            "--out", str(tmp_path / "s")]
    assert main([*base, "--num-shards", "2"]) == 2 and "needs --shard-index" in capsys.readouterr().err
    assert main([*base, "--shard-index", "x", "--num-shards", "2"]) == 2
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*base, "--shard-index", "auto", "--num-shards", "3"]) == 2
    assert "launcher says 2 shards" in capsys.readouterr().err
    assert main([*base, "--shard-index", "auto"]) == 0
    assert shard_store_path(tmp_path / "s", 1, 2).is_dir()
