"""RecBole's GRU4Rec reading its input as an item encoder's token layout."""
from __future__ import annotations

from recbole.model.sequential_recommender import GRU4Rec


class TokenGRU4Rec(GRU4Rec):
    """Only ``forward`` differs from RecBole: the GRU runs over the layout's tokens and is read at the
    last real one. A recurrence reads every token fully: ``layout.presence`` is not used."""

    def forward(self, item_seq, item_seq_len, items=None):
        layout = self.item_embedding.history(item_seq, item_seq_len, items)
        return self.gather_indexes(self.every_token(layout), layout.lengths - 1)

    def every_token(self, layout):
        """The output at every token [B, N, H] (causal)."""
        gru_output, _ = self.gru_layers(self.emb_dropout(layout.embeddings))
        return self.dense(gru_output)
