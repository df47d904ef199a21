"""release_free_heap returns freed heap pages that glibc would otherwise keep (evaluation's peak);
keep_large_allocations serves large tensors from the heap when asked (CVA_REC_MALLOC=reuse)."""
import ctypes.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cva_rec import heap
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


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):
        return False


# In a child process (mallopt changes the whole process): whether a 64 MiB tensor was served by a
# fresh mmap, read from glibc's own count of mmapped blocks (mallinfo2.hblks).
_PROBE = """
import ctypes, json, torch
from cva_rec.heap import keep_large_allocations
applied = keep_large_allocations()
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
before = libc.mallinfo2().hblks
t = torch.ones(16 << 20)  # 64 MiB: above glibc's default mmap threshold (at most 32 MiB)
print(json.dumps({"applied": applied, "mmapped_blocks": libc.mallinfo2().hblks - before}))
"""


def _probe(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("CVA_REC_MALLOC", "MALLOC_MMAP_THRESHOLD_",
                                                             "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**base, **env}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not _glibc(), reason="mallopt parameters are glibc's")
def test_large_tensors_come_from_the_heap_on_request():
    assert _probe() == {"applied": False, "mmapped_blocks": 1}  # glibc's default: a fresh mapping
    assert _probe(CVA_REC_MALLOC="reuse") == {"applied": True, "mmapped_blocks": 0}  # heap, reused by the next batch
    # glibc's own variables, when a user set them, win
    assert _probe(CVA_REC_MALLOC="reuse", MALLOC_MMAP_THRESHOLD_=str(1 << 20)) == {"applied": False, "mmapped_blocks": 1}


def test_every_command_applies_the_request_at_start_up(monkeypatch, tmp_path):
    from cva_rec.cli import main as cli

    calls = []
    monkeypatch.setattr(heap, "keep_large_allocations", lambda: calls.append(True) or True)
    assert cli.main(["evaluate", str(tmp_path / "no-run")]) == 2  # fails on the missing run, after start-up
    assert calls == [True]
