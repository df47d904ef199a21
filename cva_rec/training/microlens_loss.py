"""The MicroLens benchmark's training loss (``loss.name: microlens_inbatch``).

Read from the benchmark's published code (westlake-repl/MicroLens, Code/VideoRec/SASRec:
``utils/load_data.py``, ``utils/dataset.py``, ``model/model.py``), not copied:

* a batch is a set of **users**; each contributes its training window, the last
  ``max_seq_length + 1`` items of its training part (:meth:`UserSequences.training_windows`);
* **every position** of the window is trained: the backbone's output at position p predicts the
  item at p + 1;
* the candidates are **every item position of the batch** (all windows, inputs and targets): a
  [B * L real positions, B * (L + 1) columns] logit matrix. An item that occurs in several
  windows is several columns, as in the benchmark: its in-batch frequency then follows its
  training frequency, which is exactly what the logQ term corrects;
* logQ: logits minus log q(item), q = the item's share of all training-window positions
  (the benchmark counts every item of each user's training part, ``power`` 1);
* for a user's row, every column holding an item of **that user's own window** is masked
  (earlier and later items alike, and other copies of the target), except the target's own
  column; padding columns never count;
* mean cross-entropy over the real positions; no temperature (the benchmark has none).

The training data for this loss is one row per user (``RecBoleDataModule`` switches to it when
the loss says ``batches = "user_windows"``); validation and test are RecBole's rows as for
every loss.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cva_rec.training.allpos_loss import window_states
from cva_rec.training.loss_base import LOSSES, Loss


def microlens_loss(user: torch.Tensor, windows: torch.Tensor, item_vecs: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """The loss on one batch, from vectors already computed.

    user: [B, L, H] backbone outputs at the input positions (``windows[:, :-1]``);
    windows: [B, L + 1] item ids, right-padded with 0; item_vecs: [B * (L + 1), H] the vector of
    each window position's item (rows of padding positions are ignored); log_q: [n_items] (zeros
    for no correction).
    """
    b, l1 = windows.shape
    flat = windows.reshape(-1)
    real_col = flat != 0
    cols = torch.nonzero(real_col).squeeze(1)  # candidate columns: every real item position
    cand_items = flat[cols]
    targets = windows[:, 1:]
    rows = torch.nonzero(targets.reshape(-1) != 0).squeeze(1)  # real (position, target) pairs
    row_user = torch.div(rows, l1 - 1, rounding_mode="floor")
    # column of each row's target: position p + 1 of the same window
    target_flat = row_user * l1 + rows % (l1 - 1) + 1
    label = torch.searchsorted(cols, target_flat)
    logits = user.reshape(-1, user.shape[-1])[rows] @ item_vecs[cols].T - log_q[cand_items][None, :]
    # the user's own window items are not negatives for that user (target column excepted)
    uniq, inverse = torch.unique(flat, return_inverse=True)  # compact ids of the batch's items
    user_has = torch.zeros(b, len(uniq), dtype=torch.bool, device=windows.device)
    user_has[torch.arange(b, device=windows.device).repeat_interleave(l1), inverse] = True  # [B, U]
    same_user_item = user_has[:, inverse[cols]][row_user]  # [rows, columns]
    same_user_item[torch.arange(len(rows), device=windows.device), label] = False
    logits = logits.masked_fill(same_user_item, float("-inf"))
    return F.cross_entropy(logits, label)


@LOSSES.register("microlens_inbatch")
class MicroLensInBatch(Loss):
    batches = "user_windows"  # one training row per user (see module docstring)

    def __init__(self, cfg, item_popularity, window_item_counts: torch.Tensor = None):
        super().__init__(cfg, item_popularity)
        counts = (window_item_counts if window_item_counts is not None else item_popularity).float()
        q = counts / counts.sum()
        # items never in a training window are never candidates: any finite value will do
        self.register_buffer("window_log_q", torch.where(q > 0, q.log(), torch.zeros_like(q)), persistent=False)

    @classmethod
    def from_data(cls, cfg, data, max_seq_length: int):
        windows = data.sequences.training_windows(max_seq_length)
        counts = np.bincount(windows[windows > 0], minlength=data.n_items)
        return cls(cfg, data.item_popularity, torch.from_numpy(counts))

    def forward(self, model, windows):
        encoder, items, user = window_states(model, windows, "microlens_inbatch")
        item_vecs = encoder.candidates(windows.reshape(-1), items)
        log_q = self.window_log_q if self.cfg["logq_correction"] else torch.zeros_like(self.window_log_q)
        return microlens_loss(user, windows, item_vecs, log_q)
