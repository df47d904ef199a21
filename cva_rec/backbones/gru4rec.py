"""RecBole's GRU4Rec reading its input as an item encoder's token layout."""
from __future__ import annotations

from recbole.model.sequential_recommender import GRU4Rec

from cva_rec.backbones.fading import run_gru


class TokenGRU4Rec(GRU4Rec):
    """Only ``forward`` differs from RecBole: the GRU runs over the layout's tokens and is read at the
    last real one. A token fading out (``layout.presence``) moves the state by its presence times its
    step (``fading.py``): at 0 it is skipped exactly."""

    fades_tokens = True  # applies TokenLayout.presence (a token fading out of the input)

    def forward(self, item_seq, item_seq_len, items=None):
        layout = self.item_embedding.history(item_seq, item_seq_len, items)
        return self.gather_indexes(self.every_token(layout), layout.lengths - 1)

    def every_token(self, layout):
        """The output at every token [B, N, H] (causal)."""
        return self.dense(run_gru(self.gru_layers, self.emb_dropout(layout.embeddings), layout.presence))
