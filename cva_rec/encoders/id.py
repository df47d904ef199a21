"""``id``: the classic item-ID table (RecBole's own ``nn.Embedding``)."""
from __future__ import annotations

import torch
from torch import nn

from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.registry import register_encoder


@register_encoder("id")
class IdEncoder(ItemEncoder):
    needs_content = False

    def __init__(self, n_items: int, output_dim: int, content=None):
        super().__init__(n_items, output_dim, None)
        self.table = nn.Embedding(n_items, output_dim, padding_idx=0)
        nn.init.normal_(self.table.weight, std=0.02)

    @classmethod
    def adopt(cls, embedding: nn.Embedding) -> "IdEncoder":
        """Wrap an existing table (RecBole's initialised one) so ID runs match RecBole exactly.

        Its padding row keeps RecBole's initial values (never updated; masked in ranking)."""
        enc = cls.__new__(cls)
        ItemEncoder.__init__(enc, embedding.num_embeddings, embedding.embedding_dim, None)
        enc.table = embedding
        return enc

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.table(item_ids)

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:  # plain lookup: no dedup needed
        return self.table(item_ids)

    def all_items(self, chunk_size: int = 4096) -> torch.Tensor:
        return self.table.weight
