"""release_free_heap returns freed heap pages that glibc would otherwise keep (evaluation's peak)."""
import ctypes.util
import re
from pathlib import Path

import pytest
import torch

from cva_rec.heap import release_free_heap


def _anon_mb() -> float:
    return int(re.search(r"RssAnon:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists() or "libc" not in str(ctypes.util.find_library("c")),
                    reason="needs Linux with glibc (malloc_trim, /proc)")
def test_freed_small_tensors_are_returned_to_the_os():
    # 4,000 tensors of 16 KB (under glibc's mmap threshold: they live in the heap), then one more
    # on top that stays alive, so the heap cannot shrink from its end when the others are freed
    many = [torch.ones(4096) for _ in range(4000)]
    pin = torch.ones(4096)
    del many
    before = _anon_mb()
    assert release_free_heap()
    after = _anon_mb()
    assert before - after > 40, (before, after)  # ~64 MB were freed but resident
    assert pin.sum().item() == 4096
