"""Training losses, chosen by ``loss.name``.

* ``full_softmax``: RecBole's own ``calculate_loss`` (CE over all items, NextItNet's
  regulariser included). With a content encoder every item is encoded each step: this is
  allowed but costly, and the trainer logs the cost.
* ``inbatch_softmax``: candidates are the batch's unique targets (a batch of RecBole prefix
  rows), logQ-corrected by training popularity, with the user's input history masked.
* ``microlens_inbatch``: the MicroLens benchmark's loss (batches of users, every window position
  trained, every item position of the batch a candidate): :mod:`cva_rec.training.microlens_loss`.
* ``allpos_full_softmax`` / ``allpos_sampled_softmax``: full / sampled softmax on the same batches of
  users, every window position trained: :mod:`cva_rec.training.allpos_loss`.
* ``window_cloze``: BERT4Rec's masked-item objective on the same batches of users:
  :mod:`cva_rec.training.cloze_loss`.
* ``sampled_softmax``: the target plus ``num_negatives`` negatives shared across the batch, drawn
  with probability ∝ (count + 1) ** ``popularity_alpha`` and logQ-corrected by that same
  distribution (Jean et al. 2015; Yi et al. 2019).

In-batch and sampled losses encode the batch's unique items (inputs and candidates) once
(``ItemEncoder.encode_items``) and hand them to the backbone's ``forward`` and the candidates.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from cva_rec.backbones import item_encoder_of, seq_output
from cva_rec.training import allpos_loss, cloze_loss, microlens_loss  # noqa: F401  (register allpos_*, window_cloze, microlens_inbatch)
from cva_rec.training.loss_base import LOSSES, Loss, negative_distribution  # noqa: F401  (re-exported: plugins register here)

@LOSSES.register("full_softmax")
class FullSoftmax(Loss):
    encodes_all_items = True

    def forward(self, model, interaction):
        return model.calculate_loss(interaction)


class _CandidateSoftmax(Loss):
    """Shared body of the in-batch and sampled losses: encode once, score, mask, CE."""

    def candidates(self, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, model, interaction):
        seq = interaction[model.ITEM_SEQ]
        targets = interaction[model.POS_ITEM_ID]
        cands = self.candidates(targets)
        encoder = item_encoder_of(model)
        items = encoder.encode_items(torch.cat([seq.reshape(-1), cands]))  # this step's items, encoded once
        user = seq_output(model, interaction, items)
        cand_vecs = encoder.candidates(cands, items)
        logits = user @ cand_vecs.T / self.cfg["temperature"]
        if self.cfg["logq_correction"]:
            logits = logits - self.log_q[cands][None, :]
        is_target = cands[None, :] == targets[:, None]
        if self.cfg["mask_history"]:
            # an item the user already interacted with is not a negative for them
            in_hist = history_mask(seq, cands)
            logits = logits.masked_fill(in_hist & ~is_target, float("-inf"))
        return self.ce(logits, is_target)

    @staticmethod
    def ce(logits, is_target):
        # the target's column; duplicates of the target among candidates are removed by unique
        label = is_target.float().argmax(1)
        return F.cross_entropy(logits, label)


@LOSSES.register("inbatch_softmax")
class InBatchSoftmax(_CandidateSoftmax):
    def candidates(self, targets):
        return torch.unique(targets)


@LOSSES.register("sampled_softmax")
class SampledSoftmax(_CandidateSoftmax):
    def __init__(self, cfg, item_popularity):
        super().__init__(cfg, item_popularity)
        # the distribution negatives are drawn from is the one logQ subtracts (alpha = 0: uniform, no correction in effect)
        probs, self.log_q = negative_distribution(item_popularity, cfg["popularity_alpha"])
        self.register_buffer("sample_probs", probs, persistent=False)

    def candidates(self, targets):
        negs = torch.multinomial(self.sample_probs, self.cfg["num_negatives"], replacement=True)
        return torch.unique(torch.cat([targets, negs]))


def history_mask(seq: torch.Tensor, cands: torch.Tensor) -> torch.Tensor:
    """[B, C] bool: candidate c (sorted, unique) occurs in row b's input sequence.

    Scatter through ``searchsorted`` instead of a [B, L, C] comparison (memory O(B*C)).
    """
    pos = torch.searchsorted(cands, seq).clamp(max=cands.numel() - 1)
    hit = (cands[pos] == seq) & (seq != 0)
    mask = torch.zeros(seq.shape[0], cands.numel() + 1, dtype=torch.bool, device=seq.device)
    mask.scatter_(1, torch.where(hit, pos, cands.numel()), True)
    return mask[:, :-1]


def build_loss(cfg: Mapping[str, Any], item_popularity: torch.Tensor, data=None) -> Loss:
    """The configured loss; a loss with a ``from_data`` constructor reads more of the data than popularity."""
    cls = LOSSES.get(cfg["loss"]["name"])
    if data is not None and hasattr(cls, "from_data"):
        return cls.from_data(cfg["loss"], data, int(cfg["dataset"]["max_seq_length"]))
    return cls(cfg["loss"], item_popularity)

