"""BERT4Rec's cloze objective on one window per user (``loss.name: window_cloze``).

The BERT4Rec paper (Sun et al., CIKM 2019) trains each user's sequence with random items masked and
predicted from both sides. RecBole applies its ``mask_itemseq`` transform to prefix rows instead (one
row per interaction, each prefix masked anew, the row's target unused). Here a batch is
``train.batch_size`` users, as for the all-positions objectives (:mod:`.allpos_loss`): each user's
training window (:meth:`~cva_rec.data.histories.UserSequences.training_windows`), its last
``max_seq_length`` items, goes through RecBole's own transform (``mask_ratio`` of the items masked,
or with probability ``ft_ratio`` only the last one, as RecBole's BERT4Rec config says) and RecBole's
``calculate_loss`` (cross-entropy over all items at the masked positions, ``output_bias`` included).
Only BERT4Rec reads these masked fields.
"""
from __future__ import annotations

import torch
from recbole.data.interaction import Interaction

from cva_rec.errors import ConfigError
from cva_rec.training.allpos_loss import _UserWindowLoss
from cva_rec.training.loss_base import LOSSES


def window_sequences(windows: torch.Tensor, max_seq_length: int):
    """(item_seq [B, max_seq_length], lengths [B]): each window's last ``max_seq_length`` items, left-aligned
    as RecBole lays out ``item_id_list`` (windows hold up to ``max_seq_length + 1`` items, right-padded)."""
    lengths = (windows != 0).sum(1)
    full = lengths > max_seq_length  # a full window: drop its oldest item
    seq = torch.where(full[:, None], windows[:, 1:], windows[:, :max_seq_length])
    return seq, torch.clamp(lengths, max=max_seq_length)


class _Catalogue:
    """What RecBole's transform asks of a dataset: the number of item ids (the mask id is that number)."""

    def __init__(self, n_items: int):
        self.n_items = n_items

    def num(self, field):
        return self.n_items


@LOSSES.register("window_cloze")
class WindowCloze(_UserWindowLoss):
    encodes_all_items = True

    def forward(self, model, windows):
        masking = getattr(model, "cloze_masking", None)
        if masking is None:
            raise ConfigError("loss window_cloze is BERT4Rec's masked-item objective: it needs model.name=BERT4Rec")
        seq, lengths = window_sequences(windows, model.max_seq_length)
        batch = Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths})
        return model.calculate_loss(masking(_Catalogue(model.n_items), batch))
