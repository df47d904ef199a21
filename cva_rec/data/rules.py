"""Rules on the .inter rows that RecBole's own options do not express, applied inside its dataset.

* ``dataset.duplicates``: what to do with *exact* duplicate rows (same user, item and time).
  ``drop`` (default) keeps the first and logs how many went, ``keep`` leaves them (each is then
  a separate interaction: a target, an input and, at test, part of the masked history),
  ``error`` refuses the file. RecBole's ``rm_dup_inter`` is not this: it removes every repeat of a
  (user, item) *pair*, whatever the time, which deletes legitimate re-consumption, and re-sorts
  the rows with an unstable sort first.
* ``dataset.truncate_before_split``: keep each user's most recent N interactions before the
  leave-two-out split (the CVA paper's App. A). Applied after the interaction-count filters, in
  RecBole's per-user order, so validation and test targets are unchanged and training loses the
  oldest items.
* Exact time order. RecBole min-max normalises the time (``normalize_all``) and sorts each user's
  rows stably on its float32: interactions closer than that float32's resolution (about 1 s on
  ml-100k, all of them beside one outlier time) kept their *file* order. Here the rows are sorted
  stably by the exact (float64) time right before the normalisation, after the ids are assigned;
  the float32 key is a non-decreasing function of the exact time, so RecBole's own stable sorts
  then keep that order: a user's sequence is ordered by exact time, ties in file order.

All live in a subclass of RecBole's ``SequentialDataset`` (its ``_remove_duplication`` hook runs
before the filters; the truncation runs right before its augmentation), so RecBole still builds
every window and split itself. The subclass stacks on top of the held-out-items dataset
(:mod:`cva_rec.data.cold_items`) when that is on: truncation first, then the hold-out.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np

from cva_rec.errors import DataError

log = logging.getLogger("cva_rec")


def last_n_per_user(users: np.ndarray, n: int) -> np.ndarray:
    """Rows grouped by user (each user's rows in order): bool mask of each user's last ``n`` rows."""
    users = np.asarray(users)
    if len(users) == 0:
        return np.zeros(0, dtype=bool)
    if np.any(users[1:] < users[:-1]):
        raise DataError("rows must be grouped by user in ascending user order")
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    from_end = np.repeat(starts + counts, counts) - np.arange(len(users))  # 1 for a user's last row
    return from_end <= n


class ProtocolRows:
    """Mixin for a RecBole ``SequentialDataset`` class: the rules of the module docstring."""

    def __init__(self, config, dataset_cfg: Mapping[str, Any], *args):
        self.duplicates_rule = dataset_cfg.get("duplicates", "drop")
        self.truncate_to = dataset_cfg.get("truncate_before_split")
        self.dataset_label = dataset_cfg.get("name", "dataset")
        super().__init__(config, *args)

    def _remove_duplication(self):
        super()._remove_duplication()  # RecBole's own (user, item) rule: off unless rm_dup_inter is set
        feat = self.inter_feat
        cols = [c for c in (self.uid_field, self.iid_field, self.time_field) if c in feat]
        dup = feat.duplicated(subset=cols, keep="first").to_numpy()
        n = int(dup.sum())
        if not n or self.duplicates_rule == "keep":
            return
        if self.duplicates_rule == "error":
            first = feat[dup].iloc[0]
            raise DataError(
                f"dataset {self.dataset_label!r}: {n} exact duplicate rows (same {', '.join(cols)}), e.g. "
                f"{', '.join(f'{c}={first[c]}' for c in cols)}; set dataset.duplicates to drop or keep"
            )
        self.inter_feat = feat[~dup]
        log.info("dataset %s: dropped %d exact duplicate rows (same %s); dataset.duplicates=keep keeps them",
                 self.dataset_label, n, ", ".join(cols))

    def _normalize(self):
        if self.time_field in self.inter_feat:  # exact time order (module docstring); ids were assigned before this
            order = np.argsort(self.inter_feat[self.time_field].to_numpy(dtype=np.float64), kind="stable")
            self.inter_feat = self.inter_feat.iloc[order].reset_index(drop=True)
        super()._normalize()

    def data_augmentation(self):
        self._check_windows_fit()
        if self.truncate_to:
            import torch

            # RecBole's augmentation starts with this same stable sort: "most recent" is its order
            self.sort(by=[self.uid_field, self.time_field], ascending=True)
            keep = last_n_per_user(self.inter_feat[self.uid_field].numpy(), int(self.truncate_to))
            self.inter_feat = self.inter_feat[torch.from_numpy(np.flatnonzero(keep))]
        super().data_augmentation()


    def _check_windows_fit(self):
        """RecBole's augmentation allocates [rows, max_seq_length] per list field at once: sized first."""
        from cva_rec.data.memory_budget import check_recbole_windows

        users = self.inter_feat[self.uid_field].numpy()
        counts = np.bincount(users)
        counts = counts[counts > 0]
        rows = int(len(users) - len(counts))
        length = int(self.config["MAX_ITEM_LIST_LENGTH"])
        if self.truncate_to:
            rows = int(np.minimum(counts, int(self.truncate_to)).sum() - len(counts))
        cell = sum(self.inter_feat[f].element_size() for f in self.inter_feat.columns if f != self.uid_field)
        check_recbole_windows(rows, length, cell, int(counts.max(initial=1)) - 1)


def create_dataset(config, dataset_cfg: Mapping[str, Any]):
    """RecBole's sequential dataset (or the held-out-items one) with the rules above."""
    from recbole.data.dataset import SequentialDataset

    import cva_rec.data.cold_items as cold_items

    fraction = float(dataset_cfg.get("cold_items") or 0.0)
    if config["benchmark_filename"] is not None:
        return cold_items.create_dataset(config, dataset_cfg)  # pre-split files: RecBole's own path
    if fraction > 0:
        base = cold_items._sequential_dataset_class()
        args = (fraction, int(dataset_cfg.get("cold_items_seed") or 0), int(dataset_cfg["min_user_interactions"]))
    else:
        base, args = SequentialDataset, ()
    cls = type(f"Protocol{base.__name__}", (ProtocolRows, base), {})
    return cls(config, dataset_cfg, *args)
