"""Leave-two-out over CSR sequences, and batches cut from them on the fly.

RecBole 1.2.1 (``data_augmentation`` then ``build`` then ``leave_one_out``) makes one row per
target position ``p >= 1`` of a user's sequence, with the window ``seq[max(0, p-L):p]``; re-sorts
the rows stably by the target's float32 time key (see .sequences); groups them by user in order of each user's first
row (so users are ordered by the time key of their *second* item, ties by internal id);
and gives each user's last ``min(2, rows-1)`` rows to validation / test (a user with 3
interactions has no validation row), keeping the training rows of a user together, in order.
:func:`leave_two_out` computes that layout from the CSR arrays (O(users) memory) and
:class:`TrainingWindows` maps a row index to (user, position) and cuts its window, so the rows
and their order equal RecBole's: with the same seeded shuffle, the same batches.

A *batch source* is the part of a RecBole data loader that
:class:`cva_rec.training.datamodule.RecBoleDataModule` reads: ``sample_size``, ``step`` (batch
size), ``collate_fn(list of row indices)`` and ``_dataset`` (field names, catalogue size).
Batches are RecBole ``Interaction`` objects with ``user_id``, ``item_id``, ``item_id_list`` and
``item_length`` (the fields the backbones and losses read), so models run unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import numpy as np
import torch

from cva_rec.data.streaming.sequences import CsrSequences


@dataclass
class LeaveTwoOutLayout:
    user_order: np.ndarray  # [k] users with training rows, in RecBole's row-group order
    train_ptr: np.ndarray  # [k + 1] int64: training rows of user_order[j] are train_ptr[j]:train_ptr[j+1]
    valid_users: np.ndarray  # users with a validation row (target: second-last item), in that order
    test_users: np.ndarray  # users with a test row (target: last item), in that order


def leave_two_out(seqs: CsrSequences) -> LeaveTwoOutLayout:
    lengths = np.diff(seqs.indptr)
    users = np.flatnonzero(lengths >= 2)  # users with at least one (input, target) row, ascending id
    rows = lengths[users] - 1
    held_out = np.minimum(2, rows - 1)
    second_time = np.asarray(seqs.time_key[seqs.indptr[users] + 1])
    order = np.argsort(second_time, kind="stable")  # ties keep ascending user id
    users, rows, held_out = users[order], rows[order], held_out[order]
    train_ptr = np.concatenate([[0], np.cumsum(rows - held_out)]).astype(np.int64)
    return LeaveTwoOutLayout(users, train_ptr, users[held_out == 2], users[held_out >= 1])


class FieldNames:
    """RecBole's names for the batch fields (from its Config)."""

    def __init__(self, config):
        self.user = config["USER_ID_FIELD"]
        self.item = config["ITEM_ID_FIELD"]
        self.item_list = self.item + config["LIST_SUFFIX"]
        self.length = config["ITEM_LIST_LENGTH_FIELD"]
        self.max_len = int(config["MAX_ITEM_LIST_LENGTH"])


def window_batch(seqs: CsrSequences, users: np.ndarray, positions: np.ndarray, f: FieldNames):
    """Interaction of rows (user, target position): the window of the last max_len items before it."""
    from recbole.data.interaction import Interaction

    starts = seqs.indptr[users]
    first = np.maximum(0, positions - f.max_len)
    length = positions - first
    cols = np.arange(f.max_len)
    idx = (starts + first)[:, None] + cols[None, :]
    valid = cols[None, :] < length[:, None]
    window = np.where(valid, seqs.items[np.where(valid, idx, 0)], 0)
    return Interaction({
        f.user: torch.from_numpy(np.asarray(users, dtype=np.int64)),
        f.item: torch.from_numpy(np.asarray(seqs.items[starts + positions], dtype=np.int64)),
        f.item_list: torch.from_numpy(window.astype(np.int64)),
        f.length: torch.from_numpy(length.astype(np.int64)),
    })


class TrainingWindows:
    """Row index -> (user, target position) -> window; called with a list of row indices (a batch)."""

    def __init__(self, seqs: CsrSequences, layout: LeaveTwoOutLayout, fields: FieldNames):
        self.seqs, self.layout, self.fields = seqs, layout, fields

    def __len__(self) -> int:
        return int(self.layout.train_ptr[-1])

    def rows(self, index) -> tuple[np.ndarray, np.ndarray]:
        index = np.asarray(index, dtype=np.int64)
        j = np.searchsorted(self.layout.train_ptr, index, side="right") - 1
        return self.layout.user_order[j], index - self.layout.train_ptr[j] + 1

    def __call__(self, index):
        return window_batch(self.seqs, *self.rows(index), self.fields)


class EvalRows:
    """One row per user: target = the item ``from_end`` places from the end (2 valid, 1 test).

    Returns what RecBole's sequential full-sort loader returns: (interaction, None, positive_u, positive_i).
    """

    def __init__(self, seqs: CsrSequences, users: np.ndarray, from_end: int, fields: FieldNames):
        self.seqs, self.users, self.from_end, self.fields = seqs, users, from_end, fields

    def __len__(self) -> int:
        return len(self.users)

    def __call__(self, index):
        users = self.users[np.asarray(index, dtype=np.int64)]
        positions = np.diff(self.seqs.indptr)[users] - self.from_end
        inter = window_batch(self.seqs, users, positions, self.fields)
        return inter, None, torch.arange(len(users)), inter[self.fields.item]


class DatasetInfo:
    """What models and the data module read from a RecBole dataset: field names and id spaces."""

    def __init__(self, seqs: CsrSequences, fields: FieldNames):
        self.uid_field, self.iid_field = fields.user, fields.item
        self.item_id_list_field, self.item_list_length_field = fields.item_list, fields.length
        self.field2id_token: Dict[str, Any] = {fields.user: seqs.user_tokens, fields.item: seqs.item_tokens}
        self.user_num, self.item_num, self.inter_num = seqs.n_users, seqs.n_items, int(len(seqs.items))

    def num(self, field: str) -> int:
        return len(self.field2id_token[field])


class BatchSource:
    """The RecBole-loader protocol RecBoleDataModule reads (sample_size, step, collate_fn, _dataset)."""

    def __init__(self, collate_fn, batch_size: int, info: DatasetInfo):
        self.collate_fn, self.step, self._dataset = collate_fn, int(batch_size), info
        self.sample_size = len(collate_fn)
