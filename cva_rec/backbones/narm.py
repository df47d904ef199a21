"""RecBole's NARM (GRU encoder + attention over its states) reading an item encoder's token layout."""
from __future__ import annotations

import torch
from recbole.model.sequential_recommender import NARM

from cva_rec.backbones.fading import run_gru


class TokenNARM(NARM):
    """Only ``forward`` differs from RecBole: GRU over the layout's tokens, the attention's padding
    mask from the layout. A token fading out (``layout.presence``) moves the GRU state by its
    presence times its step (``fading.py``) and its attention weight is scaled by it."""

    fades_tokens = True  # applies TokenLayout.presence (a token fading out of the input)

    def forward(self, item_seq, item_seq_len, items=None):
        layout = self.item_embedding.history(item_seq, item_seq_len, items)
        gru_out = run_gru(self.gru, self.emb_dropout(layout.embeddings), layout.presence)
        c_global = ht = self.gather_indexes(gru_out, layout.lengths - 1)
        mask = layout.mask if layout.presence is None else layout.mask * layout.presence
        mask = mask.unsqueeze(2).expand_as(gru_out)  # avoid the influence of padding (and of fading tokens)
        q1 = self.a_1(gru_out)
        q2_expand = self.a_2(ht).unsqueeze(1).expand_as(q1)
        alpha = self.v_t(mask * torch.sigmoid(q1 + q2_expand))
        c_local = torch.sum(alpha.expand_as(gru_out) * gru_out, 1)
        c_t = self.ct_dropout(torch.cat([c_local, c_global], 1))
        return self.b(c_t)
