"""``dataset.engine: streaming``: a :class:`cva_rec.data.dataset.SequentialData` from CSR sequences.

The same RecBole ``Config`` as the RecBole engine (the backbones read it), the same splits,
training rows (and their order), evaluation rows, histories, popularity and item ids; no
RecBole dataset is built. The arrays come from the on-disk cache when the ``.inter`` file and
the filters are unchanged (``<output.dir>/.sequence_cache/``).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cva_rec.errors import ConfigError, DataError
from cva_rec.data.histories import UserSequences
from cva_rec.data.streaming.cache import cached_sequences
from cva_rec.data.streaming.inter_file import DEFAULT_CHUNK_ROWS, read_inter
from cva_rec.data.streaming.sequences import build_sequences
from cva_rec.data.streaming.windows import BatchSource, DatasetInfo, EvalRows, FieldNames, TrainingWindows, leave_two_out

log = logging.getLogger("cva_rec")


def _time_is_normalised(config, time_field: str) -> bool:
    fields = config["normalize_field"]
    if fields:
        return time_field in fields
    return bool(config["normalize_all"])


def _refuse_unsupported(config, cfg: Mapping[str, Any]) -> None:
    """RecBole options the streaming engine does not reproduce: a clear error, never a silent difference."""
    unsupported = {k: config[k] for k in ("val_interval", "benchmark_filename", "discretization", "unused_col")
                   if config[k] not in (None, {}, [])}
    if config["eval_args"]["order"] != "TO":
        unsupported["eval_args.order"] = config["eval_args"]["order"]
    for key in ("cold_items",):  # dataset options built on RecBole's datasets
        if cfg["dataset"].get(key):
            unsupported[f"dataset.{key}"] = cfg["dataset"][key]
    if unsupported:
        raise ConfigError(f"dataset.engine=streaming does not support {unsupported}; use dataset.engine=recbole")
    if config["rm_dup_inter"] not in (None, "first", "last"):
        raise ConfigError(f"rm_dup_inter={config['rm_dup_inter']!r}: RecBole accepts first or last")


def build_streaming_data(cfg: Mapping[str, Any], config, inter_path: Path, chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """``config``: the RecBole Config the RecBole engine would use; ``inter_path``: the checked .inter file."""
    from cva_rec.data.sequential_data import SequentialData

    ds = cfg["dataset"]
    _refuse_unsupported(config, cfg)
    min_u, min_i = int(ds["min_user_interactions"]), int(ds["min_item_interactions"])
    if min_u < 3:
        raise DataError(f"dataset.min_user_interactions={min_u}: leave-two-out needs at least 3 interactions per user")
    fields = FieldNames(config)
    normalize = _time_is_normalised(config, ds["time_field"])
    params = {"user_field": ds["user_field"], "item_field": ds["item_field"], "time_field": ds["time_field"],
              "field_separator": config["field_separator"], "min_user": min_u, "min_item": min_i,
              "rm_dup_inter": config["rm_dup_inter"], "normalize_time": normalize,
              # cva_rec's own row rules (cva_rec/data/rules.py); absent keys mean RecBole's behaviour
              "duplicates": ds.get("duplicates", "keep"), "truncate_before_split": ds.get("truncate_before_split")}
    t0 = time.perf_counter()

    def build():
        try:  # the log passed straight in: build_sequences frees its unfiltered columns once filtered
            return build_sequences(read_inter(inter_path, ds["user_field"], ds["item_field"], ds["time_field"],
                                              config["field_separator"], chunk_rows), min_u, min_i, config["rm_dup_inter"], normalize,
                                   params["duplicates"], params["truncate_before_split"])
        except DataError as exc:
            raise DataError(f"dataset {ds['name']!r}: {exc}") from None

    seqs, hit = cached_sequences(Path(cfg["output"]["dir"]) / ".sequence_cache", ds["name"], inter_path, params, build)
    log.info("streaming engine: %d users, %d items, %d interactions (%s, %.1f s)", seqs.n_users - 1, seqs.n_items - 1,
             len(seqs.items), "from cache" if hit else "built and cached", time.perf_counter() - t0)
    if seqs.n_users <= 2:
        raise DataError(f"dataset {ds['name']!r} has {len(seqs.items)} interactions from {seqs.n_users - 1} users "
                        f"after keeping users with >= {min_u} interactions: too few to train and evaluate")
    layout = leave_two_out(seqs)
    info = DatasetInfo(seqs, fields)
    train = BatchSource(TrainingWindows(seqs, layout, fields), config["train_batch_size"], info)
    valid = BatchSource(EvalRows(seqs, layout.valid_users, 2, fields), config["eval_batch_size"], info)
    test = BatchSource(EvalRows(seqs, layout.test_users, 1, fields), config["eval_batch_size"], info)
    user_seqs = UserSequences(np.asarray(seqs.indptr), seqs.items)  # memory-mapped items: histories read them in place
    return SequentialData.from_sequences(config, info, train, valid, test, user_seqs)
