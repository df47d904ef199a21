"""Deterministic shards of an extraction: which videos each process owns, and where its store goes.

The sorted video listing (item id = file stem) is dealt round-robin: shard ``i`` of ``count``
owns rows ``i, i + count, i + 2 * count, ...``. Every process computes the same split from the
listing alone (no coordination, no shared state); the shards are disjoint, cover the listing and
differ in size by at most one video. Round-robin rather than contiguous blocks because neighbouring
ids tend to be alike (an uploader's batch, a crawl day): blocks would give one rank all the long
videos (measured here: the three HEVC clips sort before the four H.264 ones). Shard ``i``'s local
row ``j`` is global row ``i + j * count``, so ``merge-stores`` can put every row back where a
single process would have written it, byte for byte.

Each shard writes an ordinary resumable feature store at ``<out>.shards/shard-IIIII-of-CCCCC``
whose ``meta.json`` carries ``shard: {index, count, n_items}``; a killed shard restarted with the
same arguments resumes its own rows only.

Launchers: ``--shard-index I --num-shards C`` by hand or from a SLURM array
(``--shard-index auto`` reads ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT``), or one
process per rank under ``torchrun`` / ``srun`` (``RANK``/``WORLD_SIZE``, ``SLURM_PROCID``/
``SLURM_NTASKS``). Ranks never communicate: a slow or dead rank delays only its own shard.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from typing import Mapping

from cva_rec.errors import ConfigError

SHARDS_SUFFIX = ".shards"
# (index variable, count variable), first match wins
ENV_LAUNCHERS = (("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"), ("RANK", "WORLD_SIZE"),
                 ("SLURM_PROCID", "SLURM_NTASKS"))


def check_shard(index: int, count: int, n_items: int | None = None) -> None:
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard index must be in [0, {count}) with at least one shard, got {index} of {count}")
    if n_items is not None and count > n_items:
        raise ConfigError(f"{count} shards for {n_items} videos: every shard needs at least one video")


def shard_rows(n_items: int, index: int, count: int) -> np.ndarray:
    """Global rows owned by shard ``index`` of ``count`` over ``n_items`` rows (round-robin, ascending)."""
    check_shard(index, count, n_items)
    return np.arange(index, n_items, count)


def shard_metadata(n_items: int, index: int, count: int) -> dict:
    check_shard(index, count, n_items)
    return {"index": index, "count": count, "n_items": n_items, "assignment": "round-robin"}


def shards_dir(out: str | os.PathLike) -> Path:
    p = Path(out)
    return p.with_name(p.name + SHARDS_SUFFIX)


def shard_store_path(out: str | os.PathLike, index: int, count: int) -> Path:
    """Where shard ``index`` of ``count`` of the extraction into ``out`` writes its store."""
    check_shard(index, count)
    return shards_dir(out) / f"shard-{index:05d}-of-{count:05d}"


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(index, count) from a SLURM array, torchrun or srun environment (ConfigError if none is set)."""
    env = os.environ if env is None else env
    for index_var, count_var in ENV_LAUNCHERS:
        if index_var in env and count_var in env:
            try:
                index, count = int(env[index_var]), int(env[count_var])
            except ValueError:
                raise ConfigError(f"{index_var}={env[index_var]!r} / {count_var}={env[count_var]!r} are not integers") from None
            if index_var == "SLURM_ARRAY_TASK_ID":  # arrays may start at 1 (--array=1-8)
                index -= int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            check_shard(index, count)
            return index, count
    names = ", ".join(f"{a}/{b}" for a, b in ENV_LAUNCHERS)
    raise ConfigError(f"--shard-index auto: no launcher variables set (looked for {names})")
