"""Key-frame samplers: choose N of a video's K candidate frames (K = 100, fewer for short videos).

Every sampler returns ascending candidate indices (time order), ``min(N, K)`` of them:

* ``mid5``    N consecutive candidates centred on the temporal midpoint (MicroLens uses N=5).
* ``uniform`` N candidates evenly spread (centre of N equal parts of the candidate range).
* ``random``  N distinct candidates drawn with a generator seeded by (seed, item id), so an
  item's choice is the same in every run, resume and batch composition.
* ``title``   the N candidates with the highest CLIP image-title similarity (``scores``,
  from :mod:`data_prep.clip_scorer`), then sorted by timestamp (CVA sec. 3.2.1). Ties go to
  the earlier frame.
* ``codec``   every I-frame candidate (``intra``), then the inter-coded candidates with the
  highest codec saliency (``scores``, from :mod:`data_prep.codec`: motion vectors + residual
  energy, OneVision-Encoder sec. 2.1), sorted by timestamp. More I-frames than N: N of them,
  evenly spread. Ties go to the earlier frame.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Protocol

import numpy as np

from cva_rec.errors import ConfigError
from cva_rec.registry import Registry


class Sampler(Protocol):
    def __call__(self, n_candidates: int, n: int, *, item_id: str = "", seed: int = 0,
                 scores: np.ndarray | None = None) -> np.ndarray: ...


SAMPLERS: Registry[Sampler] = Registry("key-frame sampler")
NEEDS_SCORES = {"title"}  # samplers that need CLIP title scores
NEEDS_CODEC = {"codec"}  # samplers that need codec saliency (data_prep.codec.decode_codec_candidates)


def _check(n_candidates: int, n: int) -> int:
    if n < 1:
        raise ConfigError(f"number of key frames must be >= 1, got {n}")
    return min(int(n), int(n_candidates))


@SAMPLERS.register("mid5")
def sample_middle(n_candidates: int, n: int = 5, *, item_id: str = "", seed: int = 0, scores=None) -> np.ndarray:
    k = _check(n_candidates, n)
    start = (n_candidates - k) // 2
    return np.arange(start, start + k)


@SAMPLERS.register("uniform")
def sample_uniform(n_candidates: int, n: int, *, item_id: str = "", seed: int = 0, scores=None) -> np.ndarray:
    k = _check(n_candidates, n)
    # centres of k equal parts: symmetric, and distinct because k <= n_candidates
    return np.floor((np.arange(k) + 0.5) * n_candidates / k).astype(np.int64)


def item_seed(seed: int, item_id: str) -> int:
    """A stable 64-bit seed per (seed, item): Python's hash() is salted per process, sha256 is not."""
    digest = hashlib.sha256(f"{seed}:{item_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


@SAMPLERS.register("random")
def sample_random(n_candidates: int, n: int, *, item_id: str = "", seed: int = 0, scores=None) -> np.ndarray:
    k = _check(n_candidates, n)
    rng = np.random.default_rng(item_seed(seed, item_id))
    return np.sort(rng.choice(n_candidates, size=k, replace=False))


@SAMPLERS.register("title")
def sample_title(n_candidates: int, n: int, *, item_id: str = "", seed: int = 0,
                 scores: np.ndarray | None = None) -> np.ndarray:
    k = _check(n_candidates, n)
    if scores is None:
        raise ConfigError("the 'title' sampler needs CLIP image-title scores (give --clip-checkpoint)")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != n_candidates:
        raise ConfigError(f"'title' sampler: {scores.shape[0]} scores for {n_candidates} candidates")
    order = np.argsort(-scores, kind="stable")  # stable: equal scores keep time order
    return np.sort(order[:k])


@SAMPLERS.register("codec")
def sample_codec(n_candidates: int, n: int, *, item_id: str = "", seed: int = 0,
                 scores: np.ndarray | None = None, intra: np.ndarray | None = None) -> np.ndarray:
    k = _check(n_candidates, n)
    if scores is None:
        raise ConfigError("the 'codec' sampler needs codec saliency scores (decode with data_prep.codec)")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    intra = np.zeros(n_candidates, bool) if intra is None else np.asarray(intra, bool).reshape(-1)
    if scores.shape[0] != n_candidates or intra.shape[0] != n_candidates:
        raise ConfigError(f"'codec' sampler: {scores.shape[0]} scores / {intra.shape[0]} intra flags "
                          f"for {n_candidates} candidates")
    keyframes = np.flatnonzero(intra)
    if keyframes.size >= k:
        return keyframes[sample_uniform(keyframes.size, k)]
    inter = np.flatnonzero(~intra)
    ranked = inter[np.argsort(-scores[inter], kind="stable")]  # stable: equal scores keep time order
    return np.sort(np.concatenate([keyframes, ranked[:k - keyframes.size]]))


def get_sampler(name: str) -> Callable[..., np.ndarray]:
    """The sampler registered as ``name`` (unknown names: ConfigError with the known ones)."""
    return SAMPLERS.get(name)
