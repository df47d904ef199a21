"""RecBole's NARM (GRU encoder + attention over its states) reading an item encoder's token layout."""
from __future__ import annotations

import torch
from recbole.model.sequential_recommender import NARM


class TokenNARM(NARM):
    """Only ``forward`` differs from RecBole: GRU over the layout's tokens, the attention's padding
    mask from the layout. ``layout.presence`` is not used."""

    def forward(self, item_seq, item_seq_len, items=None):
        layout = self.item_embedding.history(item_seq, item_seq_len, items)
        gru_out, _ = self.gru(self.emb_dropout(layout.embeddings))
        c_global = ht = self.gather_indexes(gru_out, layout.lengths - 1)
        mask = layout.mask.unsqueeze(2).expand_as(gru_out)  # avoid the influence of padding
        q1 = self.a_1(gru_out)
        q2_expand = self.a_2(ht).unsqueeze(1).expand_as(q1)
        alpha = self.v_t(mask * torch.sigmoid(q1 + q2_expand))
        c_local = torch.sum(alpha.expand_as(gru_out) * gru_out, 1)
        c_t = self.ct_dropout(torch.cat([c_local, c_global], 1))
        return self.b(c_t)
