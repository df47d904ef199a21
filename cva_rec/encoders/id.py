"""``id``: the classic item-ID table (RecBole's own ``nn.Embedding``)."""
from __future__ import annotations

import torch
from torch import nn

from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.registry import register_encoder


@register_encoder("id")
class IdEncoder(ItemEncoder):
    """An ``nn.Embedding(n_items, output_dim, padding_idx=0)``, looked up directly.

    Row 0 is RecBole's padding row: ``padding_idx=0`` means it never receives a gradient,
    but RecBole's ``normal_(0, 0.02)`` initialisation (reproduced here) leaves it non-zero.
    Unlike content encoders this encoder does *not* zero it, so that an adopted RecBole table
    gives bit-identical results to plain RecBole (its backbones mask padded positions
    themselves; ``all_items()`` is the raw weight, row 0 included, and evaluation masks
    item 0 out of the ranking).
    """

    needs_content = False
    zero_padding = False  # RecBole's row 0 as it is (see above)

    def __init__(self, n_items: int, output_dim: int, content=None):
        super().__init__(n_items, output_dim, None)
        self.table = nn.Embedding(n_items, output_dim, padding_idx=0)
        nn.init.normal_(self.table.weight, std=0.02)  # RecBole's _init_weights for nn.Embedding

    @classmethod
    def adopt(cls, embedding: nn.Embedding) -> "IdEncoder":
        """Wrap an existing table (e.g. RecBole's initialised ``item_embedding``) without copying it.

        The returned encoder shares the Parameter, so optimiser state and checkpoints keep
        RecBole's names and values; ID runs stay numerically identical to RecBole."""
        enc = cls.__new__(cls)
        ItemEncoder.__init__(enc, embedding.num_embeddings, embedding.embedding_dim, None)
        enc.table = embedding
        return enc

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.table(item_ids)

    def candidates(self, item_ids: torch.Tensor, items=None) -> torch.Tensor:
        if items is not None:
            return items.lookup(item_ids)
        # a lookup is cheaper than the base class's unique/inverse de-duplication
        return self.table(item_ids)

    def all_items(self, chunk_size: int = 4096) -> torch.Tensor:
        """The weight itself (no copy, no cache: it is always current)."""
        return self.table.weight
