"""RecBole's SASRec reading its input as an item encoder's token layout."""
from __future__ import annotations

import torch
from recbole.model.sequential_recommender import SASRec


class TokenSASRec(SASRec):
    """Only ``forward`` differs from RecBole: the input tokens, their positions (shared by the tokens
    of one interaction), the padding mask and the read-out index come from the layout. A token
    fading out (``layout.presence``) is weighted by its presence in every attention, so at presence
    0 it is exactly absent. ``calculate_loss``, ``predict`` and ``full_sort_predict`` are RecBole's."""

    fades_tokens = True  # applies TokenLayout.presence (a token fading out of the input)

    def forward(self, item_seq, item_seq_len, items=None):
        layout = self.item_embedding.history(item_seq, item_seq_len, items)
        return self.gather_indexes(self.every_token(layout), layout.lengths - 1)  # [B, H]

    def every_token(self, layout):
        """The output at every token [B, N, H] (causal: token j has seen tokens <= j)."""
        input_emb = layout.embeddings + self.position_embedding(layout.positions)
        input_emb = self.dropout(self.LayerNorm(input_emb))
        attention_mask = self.get_attention_mask(layout.mask)
        if layout.presence is not None:
            attention_mask = attention_mask + torch.log(layout.presence)[:, None, None, :]
        return self.trm_encoder(input_emb, attention_mask, output_all_encoded_layers=True)[-1]
