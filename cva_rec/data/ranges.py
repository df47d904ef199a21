"""Gathering many ``[start, end)`` ranges of a flat array at once (CSR rows, trie leaves)."""
from __future__ import annotations

import numpy as np


def range_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions ``starts[k] .. starts[k] + lengths[k] - 1`` of every range k, concatenated (one
    vectorised gather instead of a Python loop over ranges)."""
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets
