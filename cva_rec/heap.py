"""Give freed C heap back to the OS between phases (glibc only): after the data build, before evaluation.

PyTorch's CPU tensors come from the C allocator. A training step frees its activations
(hundreds of MB at batch 512 x length 50) but glibc keeps the freed chunks in its heap, and
evaluation's large score matrices are served from fresh mmaps above them: measured at 10M
synthetic interactions the process peak was the step's retained heap + the evaluation batch
(1.84 GB) instead of the larger of the two (1.64 GB). ``malloc_trim(0)`` returns every free
page of the heap; it costs a few ms, so it runs once per evaluation, not per step.
(A fixed ``M_MMAP_THRESHOLD`` would release each activation at once, but page-faults it in
again every step: a slower step for a lower peak. Not done.)
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Callable, Optional


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # musl, macOS, Windows: no malloc_trim, nothing to do
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def release_free_heap() -> bool:
    """Return the C heap's free pages to the OS; True when the C library could do it."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
