"""Host memory: give freed C heap back to the OS between phases (glibc only), and what is available.

:func:`available_memory` is what the memory checks of the settings compare their estimates with
(``cva_rec.data.rules``, ``cva_rec.training.memory_budget``).

Freed heap is given back after the data build and before evaluation.

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


def available_memory() -> Optional[int]:
    """Bytes of host memory a new allocation can get: ``MemAvailable``, capped by the cgroup's limit
    (a container's ``memory.max`` minus its use); None where neither is known (not Linux)."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError):
        pass
    try:  # cgroup v2
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
                found.append(max(int(limit) - int(fh.read().strip()), 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def memory_refusal(needed: int, what: str, setting: str, value, fits, available: Optional[int] = None) -> Optional[str]:
    """The one line refusing ``setting=value`` when ``needed`` bytes (for ``what``) exceed the available
    memory, with ``fits`` (a value of the setting that fits, or a sentence); None when it fits or nothing is known."""
    available = available_memory() if available is None else available
    if available is None or needed <= available:
        return None
    suggestion = f"{setting}={fits} fits" if not isinstance(fits, str) else fits
    return (f"{setting}={value} needs about {needed / 2**30:,.1f} GiB for {what}, but {available / 2**30:,.1f} GiB of memory "
            f"are available: {suggestion}")
