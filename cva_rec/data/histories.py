"""Per-user interaction sequences and what the protocol derives from them.

Every engine (RecBole's datasets today) turns its data into one :class:`UserSequences`:
each user's items in the order the split used (CSR arrays, indexed by internal user id).
The leave-two-out protocol then derives, in one place for every engine:

* the history masked at validation (everything before the second-last item) and at test
  (everything before the last item);
* item popularity = how often an item is a *training target* (the items of each user's
  training part, minus the user's first item, which is never a target);
* which items occur anywhere in training (as input or as target), for the inductive split.

A user's *training part* is what RecBole's leave-two-out split (``_split_index_by_leave_one_out``)
leaves to training: it holds out ``min(2, rows - 1)`` of the user's ``n - 1`` rows, so the training
part is everything before the validation target when ``n >= 4``, but a user with exactly 3
interactions (``min_user_interactions: 3``) has a training row and a test row and no validation
row: training keeps their first two items.

Nothing here assumes how an engine sorts its rows: the engine hands over each user's order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from cva_rec.data.ranges import range_positions


class UserHistory:
    """Items each user saw before an evaluation target, indexed by user id.

    User u's items are ``items[starts[u]:ends[u]]`` of a shared items array. A history that is a
    prefix of every user's sequence (validation, test, training part) is a view of the sequences'
    own items (memory-mapped with the streaming engine): no copy of 4-8 B per interaction each
    (67 MB for the validation and test histories at 10M interactions).
    """

    def __init__(self, indptr: np.ndarray, items: np.ndarray, ends: Optional[np.ndarray] = None):
        """CSR (``indptr`` [n_users + 1], ``items``), or with ``ends`` [n_users]: ranges
        ``[indptr[u], ends[u])`` of ``items`` (``indptr`` then holds the n_users starts)."""
        if ends is None:
            self.starts, self.ends = indptr[:-1], indptr[1:]
        else:
            self.starts, self.ends = indptr, ends
        self._items = items
        self._csr = (indptr, items) if ends is None else None

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    @property
    def indptr(self) -> np.ndarray:
        return self.csr()[0]

    @property
    def items(self) -> np.ndarray:
        return self.csr()[1]

    def csr(self) -> tuple:
        """(indptr, items) as compact CSR arrays; a view-backed history is copied once, on first use."""
        if self._csr is None:
            lengths = self.lengths
            indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            self._csr = (indptr, np.asarray(self._items[range_positions(self.starts, lengths)]))
        return self._csr

    def of(self, user: int) -> np.ndarray:
        return self._items[self.starts[user] : self.ends[user]]

    def index_pairs(self, user_ids: np.ndarray):
        """-> (rows, items) of every (batch row, history item) pair, for masking scores."""
        lengths = self.lengths[user_ids]
        rows = np.repeat(np.arange(len(user_ids)), lengths)
        return torch.from_numpy(rows), torch.from_numpy(np.asarray(self._items[range_positions(self.starts[user_ids], lengths)]))


@dataclass
class UserSequences:
    """Each user's whole (filtered) sequence in split order: ``items[indptr[u]:indptr[u+1]]``."""

    indptr: np.ndarray  # [n_users + 1] int64
    items: np.ndarray  # [n_interactions] int64 internal item ids

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def of(self, user: int) -> np.ndarray:
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def prefixes(self, drop_last: int) -> UserHistory:
        """Every user's sequence without its last ``drop_last`` items."""
        return self._keep_first(np.maximum(self.lengths - drop_last, 0))

    def _keep_first(self, keep: np.ndarray) -> UserHistory:
        starts = self.indptr[:-1]
        return UserHistory(starts, self.items, ends=starts + keep)  # a view: each user's first ``keep`` items

    def training_part(self) -> UserHistory:
        """Every user's items that RecBole's split leaves to training (see the module docstring)."""
        n = self.lengths
        return self._keep_first(n - np.minimum(2, np.maximum(n - 2, 0)))

    def valid_history(self) -> UserHistory:
        return self.prefixes(2)

    def test_history(self) -> UserHistory:
        return self.prefixes(1)

    def training_windows(self, max_seq_length: int) -> np.ndarray:
        """[users with a training target, max_seq_length + 1] int64: each user's last
        ``max_seq_length + 1`` training items (the sequence without its last two), left-aligned and
        padded with 0 as RecBole lays out ``item_id_list``. One training row per user (the MicroLens
        benchmark's batches; every position is a target)."""
        train = self.training_part()
        keep = np.minimum(np.diff(train.indptr), max_seq_length + 1)
        keep[keep < 2] = 0  # a single training item is an input without a target
        rows = np.flatnonzero(keep)
        keep = keep[rows]
        offsets = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
        src = np.repeat(train.indptr[rows + 1] - keep, keep) + offsets
        out = np.zeros((len(rows), max_seq_length + 1), dtype=np.int64)
        out[np.repeat(np.arange(len(rows)), keep), offsets] = train.items[src]
        return out

    def training_popularity(self, n_items: int) -> torch.Tensor:
        """[n_items] float: times each item is a training target (positions 1 .. of a user's training part)."""
        train = self.training_part()
        first = train.indptr[:-1][np.diff(train.indptr) > 0]  # each user's first item is an input only
        keep = np.ones(len(train.items), dtype=bool)
        keep[first] = False
        return torch.from_numpy(np.bincount(train.items[keep], minlength=n_items)).float()

    def seen_in_training(self, n_items: int) -> torch.Tensor:
        """[n_items] bool: the item occurs in some user's training part (input or target)."""
        seen = np.zeros(n_items, dtype=bool)
        seen[self.training_part().items] = True
        return torch.from_numpy(seen)

    @classmethod
    def from_rows(cls, users: np.ndarray, items: np.ndarray, n_users: int) -> "UserSequences":
        """From rows already in each user's order (rows of different users may interleave)."""
        order = np.argsort(users, kind="stable")
        counts = np.bincount(users, minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr, np.asarray(items)[order].astype(np.int64))
