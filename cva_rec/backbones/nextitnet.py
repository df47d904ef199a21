"""RecBole's NextItNet reading its input as an item encoder's token layout."""
from __future__ import annotations

from recbole.model.sequential_recommender import NextItNet


class TokenNextItNet(NextItNet):
    """Only ``forward`` differs from RecBole: the dilated convolutions run over the layout's tokens.
    As in RecBole, the output is read at the last slot (``[:, -1]``), padding or not; RecBole calls
    ``forward(item_seq)`` without lengths. ``layout.presence`` is not used."""

    fades_tokens = False  # applies TokenLayout.presence (a token fading out of the input)

    def forward(self, item_seq, item_seq_len=None, items=None):
        layout = self.item_embedding.history(item_seq, item_seq_len, items)
        hidden = self.residual_blocks(layout.embeddings)[:, -1, :].view(-1, self.residual_channels)
        return self.final_layer(hidden)

    def every_token(self, layout):
        """The output at every token [B, N, H] (causal convolutions)."""
        return self.final_layer(self.residual_blocks(layout.embeddings))
