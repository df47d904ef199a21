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
(A fixed *low* ``M_MMAP_THRESHOLD`` would release each activation at once, but page-faults it in
again every step: a slower step for a lower peak. Not done.)

:func:`keep_large_allocations` does the opposite, on request (``CVA_REC_MALLOC=reuse``; every
``cva-rec`` command applies it at start-up): glibc serves blocks above its mmap threshold (at most
32 MiB by default) from fresh mappings and unmaps them on free, so a forward pass over a batch of
4096 users, whose activations and score matrices are 50-160 MB each, pays a page fault for every
4 KiB of them on every batch. With the mmap and trim thresholds at 1 GiB such blocks come from the
heap and are reused by the next batch: about half the CPU time of evaluation's forward pass on
ml-1m, but a higher peak (freed blocks of one size leave holes another size cannot use), so it is
not the default. A ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``GLIBC_TUNABLES`` the
user set wins. docs/scale.md has the measurements.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
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


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: blocks up to this size come from the heap, and this much free heap top is kept, under keep_large_allocations
LARGE_BLOCK_BYTES = 1 << 30
_OWN_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


@functools.lru_cache(maxsize=1)
def _mallopt() -> Optional[Callable[[int, int], int]]:
    try:
        glibc = bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):  # not glibc: its mallopt parameters mean nothing elsewhere
        glibc = False
    if not glibc:
        return None
    fn = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def keep_large_allocations(environ=None) -> bool:
    """With ``CVA_REC_MALLOC=reuse``: serve blocks up to ``LARGE_BLOCK_BYTES`` from glibc's heap and keep freed
    ones for reuse (module text); True when applied. False without the request, when the user set glibc's
    own variables, or off glibc."""
    environ = os.environ if environ is None else environ
    if environ.get("CVA_REC_MALLOC", "").strip().lower() != "reuse" or any(environ.get(k) for k in _OWN_SETTINGS):
        return False
    fn = _mallopt()
    if fn is None:
        return False
    return bool(fn(M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES)) & bool(fn(M_TRIM_THRESHOLD, LARGE_BLOCK_BYTES))


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
