"""The seam between an item encoder and a RecBole sequential model.

RecBole's models read their item table as ``self.item_embedding(ids)`` (candidates: ``predict``,
BPR) and ``self.item_embedding.weight`` (every item: CE over all items, ``full_sort_predict``,
NextItNet's regulariser). :class:`ItemEmbeddingAdapter` provides both as the encoder's candidate
side, plus ``history`` for the token backbones' ``forward`` (``sasrec.py``, ``gru4rec.py``, ...),
which read the input sequence as the encoder's :class:`~cva_rec.encoders.tokens.TokenLayout`.
The adapter holds no state of its own: a step's encoded items travel as an argument.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from cva_rec.encoders import ItemEncoder
from cva_rec.encoders.tokens import EncodedItems, TokenLayout


class ItemEmbeddingAdapter(nn.Module):
    """Looks like ``nn.Embedding`` to RecBole (the candidate side); ``history`` gives the token layout."""

    def __init__(self, encoder: ItemEncoder):
        super().__init__()
        self.encoder = encoder

    @property
    def weight(self) -> torch.Tensor:
        return self.encoder.all_items()

    @property
    def embedding_dim(self) -> int:
        return self.encoder.output_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.encoder.candidates(ids)

    def history(self, item_seq: torch.Tensor, item_seq_len: Optional[torch.Tensor] = None,
                items: Optional[EncodedItems] = None) -> TokenLayout:
        return self.encoder.history(item_seq, item_seq_len, items)
