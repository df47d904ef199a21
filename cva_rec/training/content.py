"""The configured feature store, aligned to a dataset's item ids (what content encoders read)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from cva_rec.data.dataset import SequentialData


def load_content(cfg: Mapping[str, Any], data: SequentialData):
    """The configured feature store aligned to the dataset's item ids, or None."""
    c = cfg["content"]
    if not c["store"]:
        return None
    from cva_rec.features import open_store
    from cva_rec.features.shared import shared_aligned_content

    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[c["dtype"]]
    store = open_store(c["store"])
    # aligned once, memory-mapped: the DDP ranks of a node share one copy
    return shared_aligned_content(store, data.item_tokens, Path(cfg["output"]["dir"]) / ".content_cache",
                                  missing=c["missing"], dtype=dtype, max_frames=c["max_frames"])
