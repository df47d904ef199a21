"""RecBole's training windows, sized before they are allocated.

RecBole's ``SequentialDataset.data_augmentation`` allocates one ``[rows, MAX_ITEM_LIST_LENGTH]``
tensor per interaction field (item ids int64, times float32) at once: ``dataset.max_seq_length:
100000`` on ml-100k asked for 80 GB and ended in a traceback. The size is known exactly before
that allocation (rows = interactions - users), so a setting that cannot fit is one line naming it
and a length that fits.
"""
from __future__ import annotations

from typing import Optional

from cva_rec.errors import ConfigError
from cva_rec.heap import available_memory, memory_refusal


def check_recbole_windows(rows: int, max_seq_length: int, cell_bytes: int, longest: int, available: Optional[int] = None) -> None:
    """``rows`` windows of ``max_seq_length`` cells of ``cell_bytes`` (all list fields together); ``longest``:
    the longest user history (a window never needs more)."""
    available = available_memory() if available is None else available
    needed = rows * max_seq_length * cell_bytes
    if available is None or needed <= available:
        return
    fits = max(1, min(longest, available // 2 // max(rows * cell_bytes, 1)))  # half: the rest of the build needs room too
    raise ConfigError(memory_refusal(
        needed, f"RecBole's training windows ({rows:,} rows x {max_seq_length} items x {cell_bytes} bytes; the longest "
                f"history has {longest} items)", "dataset.max_seq_length", max_seq_length, fits, available))
