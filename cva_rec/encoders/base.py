"""The item-encoder interface: item index -> vector, in place of an ``nn.Embedding``.

Modelled on the small ``EmbeddingModule`` interface of Meta's generative-recommenders:
subclasses implement :meth:`encode` for a flat tensor of *unique* item ids; the base
class handles arbitrary shapes, de-duplication, the padding index (0 -> zero vector)
and the cached all-items table used for full ranking.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

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

    # -- provided ---------------------------------------------------------------------
    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Any-shaped item ids -> [..., output_dim]; each distinct id is encoded once."""
        flat = item_ids.reshape(-1)
        unique, inverse = torch.unique(flat, return_inverse=True)
        vectors = self.encode(unique)
        vectors = vectors.masked_fill((unique == 0)[:, None], 0.0)
        return vectors.index_select(0, inverse).reshape(*item_ids.shape, self.output_dim)

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
