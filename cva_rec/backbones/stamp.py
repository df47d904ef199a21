"""RecBole's STAMP (attention over a short-term memory, no recurrence) reading an item encoder's token layout."""
from __future__ import annotations

import torch
from recbole.model.sequential_recommender import STAMP


class TokenSTAMP(STAMP):
    """Only ``forward`` differs from RecBole: the memory is the layout's tokens, the last click is the
    last real token and the memory mean divides by the token count. As in RecBole, padding tokens
    are part of the sum. A token fading out (``layout.presence``) enters the memory, its mean and
    the attention scaled by its presence (at 0: as if absent)."""

    fades_tokens = True  # applies TokenLayout.presence (a token fading out of the input)

    def forward(self, item_seq, item_seq_len, items=None):
        layout = self.item_embedding.history(item_seq, item_seq_len, items)
        memory, count = layout.embeddings, layout.lengths.float()
        if layout.presence is not None:
            memory = memory * layout.presence.unsqueeze(-1)
            count = count - ((1.0 - layout.presence) * layout.mask).sum(1)
        last_inputs = self.gather_indexes(memory, layout.lengths - 1)
        ms = torch.div(torch.sum(memory, dim=1), count.unsqueeze(1))
        alpha = self.count_alpha(memory, last_inputs, ms)
        ma = torch.matmul(alpha.unsqueeze(1), memory).squeeze(1) + ms
        hs = self.tanh(self.mlp_a(ma))
        ht = self.tanh(self.mlp_b(last_inputs))
        return hs * ht
