"""Shared fixtures: real data only (RecBole's bundled ml-100k; ../shared/data when present)."""
from __future__ import annotations

from pathlib import Path

import pytest

import cva_rec  # noqa: F401  (RecBole shims before any RecBole import)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def small_overrides(tmp_path, *extra):
    """A CPU-sized ml-100k config: short histories, one epoch."""
    return [
        "dataset.max_seq_length=10", "train.epochs=1", "train.batch_size=1024", "train.early_stopping_patience=0",
        f"output.dir={tmp_path}", *extra,
    ]


@pytest.fixture(scope="session")
def ml100k_cfg(tmp_path_factory):
    from cva_rec.config import load_config

    return load_config(None, small_overrides(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="session")
def ml100k_data(ml100k_cfg):
    from cva_rec.data import build_data

    return build_data(ml100k_cfg)


def needs_shared_data():
    return pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is absent (see shared/data/README.md)")
