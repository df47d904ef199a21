"""The item-encoder interface: what a backbone reads from an item encoder, in two explicit calls.

* :meth:`ItemEncoder.candidates`: item ids (any shape) -> vectors, the items being scored
  (``all_items()`` is every item's, for full ranking);
* :meth:`ItemEncoder.history`: an item sequence + lengths -> a :class:`TokenLayout` (embeddings,
  positions, kinds, padding mask, lengths), one token per item unless the encoder says otherwise.

Subclasses implement :meth:`encode` for a flat tensor of *unique* item ids; the base class handles
arbitrary shapes, de-duplication, the padding index (0 -> zero vector) and the cached all-items
table. A training step that scores a few candidates encodes the distinct items of its histories
and candidates once (:meth:`encode_items` -> :class:`EncodedItems`) and hands that value to both
calls. Modelled on the small ``EmbeddingModule`` interface of Meta's generative-recommenders.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from cva_rec.encoders.tokens import EncodedItems, TokenLayout
from cva_rec.errors import ConfigError
from cva_rec.features.content import ItemContent


class ItemEncoder(nn.Module):
    #: whether the encoder needs frame/segment content (``ItemContent``)
    needs_content: bool = True

    def __init__(self, n_items: int, output_dim: int, content: Optional[ItemContent] = None):
        super().__init__()
        if self.needs_content and content is None:
            raise ConfigError(f"item encoder {type(self).__name__} needs item content (a feature store); none was given")
        if content is not None and content.n_items != n_items:
            raise ConfigError(f"item content covers {content.n_items} items but the dataset has {n_items}")
        self.n_items = n_items
        self.output_dim = output_dim
        self.content = content
        self._table_cache: Optional[torch.Tensor] = None
        self._table_key = None

    # -- to implement ---------------------------------------------------------------
    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Flat, unique item ids [n] (may include 0) -> vectors [n, output_dim]."""
        raise NotImplementedError

    # -- provided: the two calls a backbone makes -----------------------------------------------
    #: content encoders give the padding item 0 the zero vector (the ID table keeps RecBole's row 0)
    zero_padding: bool = True

    @property
    def tokens_per_item(self) -> int:
        """Tokens per interaction in :meth:`history` (1 unless the encoder lays out several)."""
        return 1

    def candidates(self, item_ids: torch.Tensor, items: Optional[EncodedItems] = None) -> torch.Tensor:
        """Any-shaped item ids -> [..., output_dim], the vectors the backbone scores against.

        With ``items`` (this step's :meth:`encode_items`) the vectors are looked up there;
        otherwise each distinct id is encoded once."""
        if items is not None:
            return items.lookup(item_ids)
        flat = item_ids.reshape(-1)
        unique, inverse = torch.unique(flat, return_inverse=True)
        return self._encode_distinct(unique).index_select(0, inverse).reshape(*item_ids.shape, self.output_dim)

    def history(self, item_seq: torch.Tensor, item_seq_len: Optional[torch.Tensor] = None,
                items: Optional[EncodedItems] = None) -> TokenLayout:
        """Right-padded histories [B, T] (+ lengths [B]) -> their token layout (one token per item here)."""
        return TokenLayout.one_per_item(self.candidates(item_seq, items), item_seq, item_seq_len)

    def encode_items(self, item_ids: torch.Tensor) -> EncodedItems:
        """Encode the distinct ids among ``item_ids`` once, for one step's ``history`` and ``candidates``."""
        return EncodedItems.of(item_ids, self._encode_distinct)

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.candidates(item_ids)

    def _encode_distinct(self, unique: torch.Tensor) -> torch.Tensor:
        vectors = self.encode(unique)
        return vectors.masked_fill((unique == 0)[:, None], 0.0) if self.zero_padding else vectors

    def _weights_version(self):
        # every optimiser step updates parameters in place, which bumps ``_version``
        return tuple(p._version for p in self.parameters()) + (self.training,)

    def all_items(self, chunk_size: int = 4096) -> torch.Tensor:
        """The [n_items, output_dim] table (row 0 = zeros).

        Under ``torch.no_grad`` and in eval mode it is computed once and cached until a
        parameter changes (an optimiser step) or the mode changes. With grad enabled it
        is recomputed (full-softmax training must backpropagate through it).
        """
        if torch.is_grad_enabled() and self.training:
            return self(torch.arange(self.n_items, device=self._device()))
        key = self._weights_version()
        if self._table_cache is None or self._table_key != key or self._table_cache.device != self._device():
            ids = torch.arange(self.n_items, device=self._device())
            with torch.no_grad():
                table = torch.cat([self(part) for part in ids.split(chunk_size)])
            self._table_cache, self._table_key = table, key
        return self._table_cache

    def invalidate_cache(self) -> None:
        self._table_cache, self._table_key = None, None

    def _device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        return f"n_items={self.n_items}, output_dim={self.output_dim}"
