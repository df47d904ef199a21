"""``id_content``: an ID table plus a content encoder (the paper's ID+V baseline)."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn

from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.layers import check_choice
from cva_rec.encoders.registry import build_encoder, register_encoder
from cva_rec.errors import ConfigError
from cva_rec.features.content import ItemContent


@register_encoder("id_content")
class IdContentEncoder(ItemEncoder):
    """ID embedding and content vector, combined by ``sum`` or ``concat`` (-> Linear to output_dim).

    ``content_encoder`` is a nested encoder config, e.g. ``{name: cva, depth: 4}``; it is built
    through the registry, so user-registered content encoders work too. Cold items (never seen
    in training) keep their random ID row but still get their content vector.
    """

    def __init__(self, n_items: int, output_dim: int, content: Optional[ItemContent] = None,
                 content_encoder: Optional[Mapping[str, Any]] = None, combine: str = "sum"):
        super().__init__(n_items, output_dim, content)
        if not isinstance(content_encoder, Mapping) or not content_encoder.get("name"):
            raise ConfigError("id_content needs content_encoder: {name: <encoder>, ...} (e.g. {name: cva})")
        if str(content_encoder["name"]).lower() in ("id", "id_content"):
            raise ConfigError(f"id_content: content_encoder must be a content encoder, not {content_encoder['name']!r}")
        self.combine = check_choice("id_content combine", combine, ("sum", "concat"))
        self.id_table = nn.Embedding(n_items, output_dim, padding_idx=0)
        nn.init.normal_(self.id_table.weight, std=0.02)
        self.content_encoder = build_encoder(content_encoder, n_items, output_dim, content)
        self.proj = nn.Linear(2 * output_dim, output_dim) if self.combine == "concat" else None

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        ids, vectors = self.id_table(item_ids), self.content_encoder.encode(item_ids)
        if self.proj is None:
            return ids + vectors
        return self.proj(torch.cat([ids, vectors], dim=-1))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, combine={self.combine}"
