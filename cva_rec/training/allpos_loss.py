"""Per-user all-positions objectives: one window per user, every position trained.

``loss.name: allpos_full_softmax`` and ``allpos_sampled_softmax`` train on the same batches as
``microlens_inbatch`` (:mod:`.microlens_loss`): a batch is ``train.batch_size`` users, each contributing
its training window, the last ``max_seq_length + 1`` items of its training part
(:meth:`~cva_rec.data.histories.UserSequences.training_windows`); the backbone's output at position p
predicts the item at p + 1, for every position whose target is not padding (the SASRec paper's
objective: all positions of the sequence at once). Only the candidates differ:

* ``allpos_full_softmax``: cross-entropy over the whole catalogue at every position, the scores those of
  RecBole's CE (``calculate_loss``: output times ``item_embedding.weight``, the padding row included);
  no temperature, no logQ, no history mask (NextItNet's regulariser is not added);
* ``allpos_sampled_softmax``: ``sampled_softmax`` at every position: the batch's targets plus
  ``loss.num_negatives`` negatives shared by the batch, drawn ∝ (count + 1) ** ``popularity_alpha`` and
  logQ-corrected by that distribution, divided by ``loss.temperature``; with ``loss.mask_history`` a
  candidate the user saw at or before the position (its input so far), other than the target, gets -inf.

Mean cross-entropy over the real positions. The backbone must give a state per position that has seen
only the positions up to it (:func:`window_states`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from cva_rec.backbones import item_encoder_of
from cva_rec.errors import ConfigError
from cva_rec.training.loss_base import LOSSES, Loss, negative_distribution


def window_states(model, windows: torch.Tensor, loss_name: str, extra: Optional[torch.Tensor] = None):
    """(encoder, the step's encoded items, outputs [B, L, H] at the input positions ``windows[:, :-1]``);
    ``extra``: more item ids to encode in the same pass (sampled candidates)."""
    encoder = item_encoder_of(model)
    if not hasattr(model, "every_token") or encoder.tokens_per_item != 1:
        # BERT4Rec and FMLP-Rec read later positions, NARM and STAMP keep the last state only
        raise ConfigError(f"loss {loss_name} trains every position of a user's window: it needs a causal backbone with "
                          "a state per position (SASRec, GRU4Rec, NextItNet) and one token per item")
    # every item of the step encoded once
    items = encoder.encode_items(windows if extra is None else torch.cat([windows.reshape(-1), extra]))
    return encoder, items, model.every_token(model.item_embedding.history(windows[:, :-1], None, items))


def real_positions(windows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row of the window, position, target) of every position whose target is an item, row-major."""
    targets = windows[:, 1:]
    rows, pos = torch.nonzero(targets != 0, as_tuple=True)
    return rows, pos, targets[rows, pos]


class _UserWindowLoss(Loss):
    batches = "user_windows"  # one training row per user (RecBoleDataModule switches to it)


@LOSSES.register("allpos_full_softmax")
class AllPositionsFullSoftmax(_UserWindowLoss):
    encodes_all_items = True

    def forward(self, model, windows):
        _, _, user = window_states(model, windows, "allpos_full_softmax")
        rows, pos, targets = real_positions(windows)
        logits = user[rows, pos] @ model.item_embedding.weight.T
        return F.cross_entropy(logits, targets)


@LOSSES.register("allpos_sampled_softmax")
class AllPositionsSampledSoftmax(_UserWindowLoss):
    def __init__(self, cfg, item_popularity):
        super().__init__(cfg, item_popularity)
        probs, log_q = negative_distribution(item_popularity, cfg["popularity_alpha"])
        self.register_buffer("sample_probs", probs, persistent=False)
        self.log_q = log_q  # of the sampling distribution (replaces the base class's popularity logQ)

    def forward(self, model, windows):
        negs = torch.multinomial(self.sample_probs, self.cfg["num_negatives"], replacement=True)
        encoder, items, user = window_states(model, windows, "allpos_sampled_softmax", extra=negs)
        rows, pos, targets = real_positions(windows)
        cands = torch.unique(torch.cat([targets, negs]))
        logits = user[rows, pos] @ encoder.candidates(cands, items).T / self.cfg["temperature"]
        if self.cfg["logq_correction"]:
            logits = logits - self.log_q[cands][None, :]
        label = torch.searchsorted(cands, targets)
        if self.cfg["mask_history"]:
            # a candidate among the user's inputs so far is not a negative at this position
            seen = first_positions(windows, cands)[rows] <= pos[:, None]
            seen[torch.arange(len(rows), device=windows.device), label] = False
            logits = logits.masked_fill(seen, float("-inf"))
        return F.cross_entropy(logits, label)


def first_positions(windows: torch.Tensor, cands: torch.Tensor) -> torch.Tensor:
    """[B, C] the first position of candidate c in each window (a large number where it does not occur)."""
    b, width = windows.shape
    idx = torch.searchsorted(cands, windows).clamp(max=cands.numel() - 1)
    hit = (cands[idx] == windows) & (windows != 0)
    positions = torch.arange(width, device=windows.device).expand(b, width)
    first = torch.full((b, cands.numel() + 1), width, dtype=torch.long, device=windows.device)
    first.scatter_reduce_(1, torch.where(hit, idx, cands.numel()), torch.where(hit, positions, width), reduce="amin")
    return first[:, :-1]
