"""The seam into RecBole's SASRec, GRU4Rec and NextItNet: swap the item table for an encoder.

RecBole's sequential models read their item table in exactly two ways: calling
``self.item_embedding(ids)`` (input sequences, ``predict``, BPR) and reading
``self.item_embedding.weight`` (CE over all items, ``full_sort_predict``, NextItNet's
regulariser). :class:`ItemEmbeddingAdapter` provides both on top of any
:class:`~cva_rec.encoders.ItemEncoder`, so the RecBole classes are used unmodified.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch
from torch import nn

import cva_rec  # noqa: F401
from cva_rec.components import declare_backbone
from cva_rec.encoders import ItemEncoder, build_encoder
from cva_rec.features.content import ItemContent
from cva_rec.registry import Registry


@dataclass(frozen=True)
class Backbone:
    name: str
    item_dim_key: str  # the RecBole config key that sets the item-vector width
    seq_output: Callable[[nn.Module, Any], torch.Tensor]  # (model, interaction) -> [B, item_dim]


def _seq_output_with_len(model, interaction):
    return model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])


def _seq_output_nextitnet(model, interaction):
    return model.forward(interaction[model.ITEM_SEQ])


#: names are declared for config validation in cva_rec/components.py (BACKBONE_CATALOG)
BACKBONES: Registry[Backbone] = Registry("model", on_register=declare_backbone)
BACKBONES.register("SASRec", Backbone("SASRec", "hidden_size", _seq_output_with_len))
BACKBONES.register("GRU4Rec", Backbone("GRU4Rec", "embedding_size", _seq_output_with_len))
BACKBONES.register("NextItNet", Backbone("NextItNet", "embedding_size", _seq_output_nextitnet))


class ItemEmbeddingAdapter(nn.Module):
    """Looks like ``nn.Embedding`` to RecBole; delegates to an item encoder.

    ``batch_items(ids)`` primes a per-step table of the unique items of a batch, so that the
    input sequence and the loss's candidates are encoded together, once.
    """

    def __init__(self, encoder: ItemEncoder):
        super().__init__()
        self.encoder = encoder
        self._primed_ids: Optional[torch.Tensor] = None
        self._primed_vecs: Optional[torch.Tensor] = None

    @property
    def weight(self) -> torch.Tensor:
        return self.encoder.all_items()

    @property
    def embedding_dim(self) -> int:
        return self.encoder.output_dim

    def prime(self, ids: torch.Tensor) -> torch.Tensor:
        """Encode the unique ``ids`` once; later calls within the step gather from them."""
        unique = torch.unique(ids.reshape(-1))
        self._primed_ids, self._primed_vecs = unique, self.encoder(unique)
        return unique

    def input_ids(self, item_seq: torch.Tensor) -> torch.Tensor:
        """The ids the backbone reads for a history: one per item, or several (late-fusion tokens)."""
        fn = getattr(self.encoder, "input_ids", None)
        return item_seq if fn is None else fn(item_seq)

    def clear(self) -> None:
        self._primed_ids = self._primed_vecs = None

    def primed(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.searchsorted(self._primed_ids, ids.reshape(-1))
        return self._primed_vecs.index_select(0, pos).reshape(*ids.shape, -1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self._primed_ids is not None:
            return self.primed(ids)
        return self.encoder(ids)


class SlottedPositionEmbedding(nn.Embedding):
    """SASRec's position table when each interaction is ``slots`` consecutive tokens (late fusion):
    token j reads position ``j // slots``, so all tokens of an interaction share its position and
    the table (same parameter name and shape) still loads from / into an ID model's checkpoint."""

    slots: int = 1

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.div(ids, self.slots, rounding_mode="floor"))


def _read_tokens_per_item(model: nn.Module) -> None:
    """Route the backbone's ``forward`` through the encoder's token layout (late fusion).

    RecBole's ``calculate_loss`` / ``predict`` / ``full_sort_predict`` all call ``self.forward``,
    so wrapping it on the instance changes what every one of them reads, without forking RecBole.
    """
    encoder = model.item_embedding.encoder
    original = model.forward
    if hasattr(model, "position_embedding") and not isinstance(model.position_embedding, SlottedPositionEmbedding):
        old = model.position_embedding
        slotted = SlottedPositionEmbedding(old.num_embeddings, old.embedding_dim)
        slotted.weight = old.weight
        model.position_embedding = slotted

    def forward(item_seq, item_seq_len=None):
        k = encoder.tokens_per_item
        if isinstance(getattr(model, "position_embedding", None), SlottedPositionEmbedding):
            model.position_embedding.slots = k
        ids = encoder.input_ids(item_seq)
        return original(ids) if item_seq_len is None else original(ids, item_seq_len * k)

    model.forward = forward


def build_backbone(cfg: Mapping[str, Any], recbole_config, dataset, content: Optional[ItemContent] = None, encoder: Optional[ItemEncoder] = None) -> nn.Module:
    """A RecBole model for ``cfg`` whose item table is the configured item encoder."""
    from recbole.utils import get_model

    spec = BACKBONES.get(cfg["model"]["name"])
    model = get_model(spec.name)(recbole_config, dataset)
    tokens = list(dataset.field2id_token[dataset.iid_field])
    return attach_encoder(model, cfg, content, encoder, item_tokens=tokens)


def attach_encoder(model: nn.Module, cfg: Mapping[str, Any], content: Optional[ItemContent] = None,
                   encoder: Optional[ItemEncoder] = None, item_tokens=None) -> nn.Module:
    spec = BACKBONES.get(cfg["model"]["name"])
    dim = model.item_embedding.embedding_dim
    if encoder is None:
        enc_cfg = dict(cfg["item_encoder"])
        if enc_cfg.get("name") == "id":
            from cva_rec.encoders.id import IdEncoder

            encoder = IdEncoder.adopt(model.item_embedding)  # keep RecBole's own initialised table
        else:
            encoder = build_encoder(enc_cfg, model.n_items, dim, content, item_tokens=item_tokens)
    model.item_embedding = ItemEmbeddingAdapter(encoder)
    model.cva_backbone = spec.name
    if hasattr(encoder, "input_ids"):
        _read_tokens_per_item(model)
    return model


def item_encoder_of(model: nn.Module) -> ItemEncoder:
    return model.item_embedding.encoder


def seq_output(model: nn.Module, interaction) -> torch.Tensor:
    return BACKBONES.get(model.cva_backbone).seq_output(model, interaction)
