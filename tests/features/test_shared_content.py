"""Memory-mapped aligned content: same values as align_to_items, built once, pages shared by processes.

Real content: one frame per genre of each ml-100k movie (a one-hot vector over the 19 genres),
from RecBole's bundled ml-100k.item, written with FeatureStoreWriter.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cva_rec.data.dataset import bundled_data_path
from cva_rec.features import FeatureStoreWriter, align_to_items, open_store
from cva_rec.features.shared import shared_aligned_content

ITEM_FILE = bundled_data_path() / "ml-100k" / "ml-100k.item"


@pytest.fixture(scope="module")
def genre_store(tmp_path_factory):
    if not ITEM_FILE.is_file():
        pytest.skip(f"RecBole's bundled ml-100k is missing at {ITEM_FILE}")
    rows = [line.split("\t") for line in ITEM_FILE.read_text(encoding="utf-8").splitlines()[1:]]
    items, genres = [r[0] for r in rows], [r[3].split() for r in rows]
    vocab = sorted({g for gs in genres for g in gs})
    feats = np.zeros((len(items), max(map(len, genres)), len(vocab)), dtype=np.float32)
    for i, gs in enumerate(genres):
        for k, g in enumerate(gs):
            feats[i, k, vocab.index(g)] = 1.0 + 0.001 * i  # distinct rows: a wrong order shows
    w = FeatureStoreWriter(tmp_path_factory.mktemp("store") / "genres", items, feats.shape[1], len(vocab), dtype="float32")
    w.write(np.arange(len(items)), feats, [len(g) for g in genres])
    return open_store(w.finalize())


def _tokens(store, n=600):
    # a dataset's item order differs from the store's; one token has no features
    rng = np.random.default_rng(0)
    return ["[PAD]", *rng.permutation(store.item_ids)[:n].tolist(), "not-in-store"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_same_values_as_align_to_items(genre_store, tmp_path, dtype):
    tokens = _tokens(genre_store)
    for missing, max_frames in (("zeros", None), ("mean", 3)):
        ref = align_to_items(genre_store, tokens, missing=missing, dtype=dtype, max_frames=max_frames)
        got = shared_aligned_content(genre_store, tokens, tmp_path, missing=missing, dtype=dtype, max_frames=max_frames)
        assert got.features.dtype == dtype
        assert torch.equal(got.features, ref.features)
        assert torch.equal(got.num_frames, ref.num_frames) and torch.equal(got.timestamps, ref.timestamps)
        frames, mask, _ = got.gather(torch.tensor([1, 2, len(tokens) - 1]))
        assert torch.equal(frames, ref.gather(torch.tensor([1, 2, len(tokens) - 1]))[0])
        assert int(mask[-1].sum()) == (0 if missing == "zeros" else 1)  # the item without features
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2  # one folder per option set


def test_built_once_then_reused(genre_store, tmp_path):
    tokens = _tokens(genre_store)
    shared_aligned_content(genre_store, tokens, tmp_path, missing="zeros")
    (folder,) = list(tmp_path.iterdir())
    stamp = (folder / "features.npy").stat().st_mtime_ns
    again = shared_aligned_content(genre_store, tokens, tmp_path, missing="zeros")
    assert (folder / "features.npy").stat().st_mtime_ns == stamp and list(tmp_path.iterdir()) == [folder]
    maps = Path("/proc/self/maps")
    if maps.exists():  # the buffer really is the file, not a private copy
        assert str(folder / "features.npy") in maps.read_text()
    assert again.features.is_contiguous()
    shared_aligned_content(genre_store, tokens[:-2], tmp_path, missing="zeros")  # other items -> other key
    assert len(list(tmp_path.iterdir())) == 2


CHILD = """
import sys, torch
from cva_rec.features import open_store
from cva_rec.features.shared import shared_aligned_content
store = open_store(sys.argv[1])
content = shared_aligned_content(store, sys.argv[3].split(","), sys.argv[2], missing="zeros", dtype=torch.float32)
print(float(content.features.sum()), flush=True)   # touches every page
sys.stdin.readline()                               # stay alive while the parent looks at our memory
"""


def _mapping_kib(pid: int, filename: str) -> tuple[int, int]:
    """(Rss, Pss) in KiB of the mappings of ``filename`` in process ``pid``."""
    rss = pss = 0
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's header line
            inside = line.rstrip().endswith(filename)
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
        elif inside and line.startswith("Pss:"):
            pss += int(line.split()[1])
    return rss, pss


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/<pid>/smaps to measure shared pages")
def test_two_processes_share_the_pages(genre_store, tmp_path):
    tokens = _tokens(genre_store, n=1682)
    mine = shared_aligned_content(genre_store, tokens, tmp_path, missing="zeros", dtype=torch.float32)
    total = float(mine.features.sum())  # touch every page here too
    (folder,) = list(tmp_path.iterdir())
    features_file = str(folder / "features.npy")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(genre_store.path), str(tmp_path), ",".join(tokens)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert abs(float(child.stdout.readline()) - total) < 1e-3 * abs(total)
        rss, pss = _mapping_kib(child.pid, features_file)
        my_rss, my_pss = _mapping_kib(os.getpid(), features_file)
    finally:
        child.communicate("\n", timeout=60)
    size_kib = os.path.getsize(features_file) // 1024
    assert rss >= 0.9 * size_kib and my_rss >= 0.9 * size_kib  # both processes have all of it resident
    assert pss <= 0.6 * rss and my_pss <= 0.6 * my_rss  # ...and each is charged half: one shared copy
