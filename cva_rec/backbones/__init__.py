"""RecBole sequential models whose items come from an item encoder, found by ``model.name``.

Each built-in backbone is a thin subclass of RecBole's model (one file each) that reads the
encoder's token layout in ``forward`` and inherits RecBole's ``calculate_loss``, ``predict`` and
``full_sort_predict`` unchanged (BERT4Rec also owns its mask vector); FMLP-Rec, which RecBole lacks,
is written here in RecBole's style (``fmlp_rec.py``); ``seam.py`` holds the ``nn.Embedding`` look-alike they read
items through. The names are declared for config validation in ``cva_rec/config/components.py``
(``BACKBONE_CATALOG``); register your own with ``BACKBONES.register(name, Backbone(name, cls))``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
from torch import nn

import cva_rec  # noqa: F401  (RecBole shims before RecBole is imported)
from cva_rec.backbones.bert4rec import TokenBERT4Rec
from cva_rec.backbones.fmlp_rec import FMLPRec
from cva_rec.backbones.gru4rec import TokenGRU4Rec
from cva_rec.backbones.narm import TokenNARM
from cva_rec.backbones.nextitnet import TokenNextItNet
from cva_rec.backbones.sasrec import TokenSASRec
from cva_rec.backbones.seam import ItemEmbeddingAdapter
from cva_rec.backbones.stamp import TokenSTAMP
from cva_rec.config.components import BACKBONE_CATALOG, declare_backbone
from cva_rec.encoders import ItemEncoder, build_encoder
from cva_rec.encoders.tokens import EncodedItems
from cva_rec.features.content import ItemContent
from cva_rec.registry import Registry


@dataclass(frozen=True)
class Backbone:
    name: str  # RecBole's model name (its Config reads properties/model/<name>.yaml)
    model_class: type  # (recbole_config, dataset) -> model whose forward(item_seq, item_seq_len, items=None) reads tokens


BACKBONES: Registry[Backbone] = Registry("model", on_register=declare_backbone)
_CLASSES = {"SASRec": TokenSASRec, "GRU4Rec": TokenGRU4Rec, "NextItNet": TokenNextItNet, "NARM": TokenNARM,
            "STAMP": TokenSTAMP, "BERT4Rec": TokenBERT4Rec, "FMLPRec": FMLPRec}
for _component in map(BACKBONE_CATALOG.get, BACKBONE_CATALOG.names()):  # the one list of built-in names
    if _component.builtin:
        BACKBONES.register(_component.name, Backbone(_component.name, _CLASSES[_component.name]))


def build_backbone(cfg: Mapping[str, Any], recbole_config, dataset, content: Optional[ItemContent] = None,
                   encoder: Optional[ItemEncoder] = None, trained_items=None) -> nn.Module:
    """A RecBole model for ``cfg`` whose item table is the configured item encoder; ``trained_items``
    ([n_items] bool, from the training split) lets code encoders leave never-trained rows out."""
    model_class = BACKBONES.get(cfg["model"]["name"]).model_class
    fast = bool(cfg["train"].get("fast"))
    if fast:  # the opt-in fast path's variant, where there is one
        model_class = fast_variant(model_class)
    model = model_class(recbole_config, dataset)
    tokens = list(dataset.field2id_token[dataset.iid_field])
    model = attach_encoder(model, cfg, content, encoder, item_tokens=tokens, trained_items=trained_items)
    if fast and cfg["train"].get("compile", True) and hasattr(model, "compile_forward"):
        model.compile_forward()
    return model


def fast_variant(model_class: type) -> type:
    """``train.fast``: the built-in backbone's fast-path class (cva_rec/backbones/fast_path.py, fast_sasrec.py);
    a backbone without one (NARM, STAMP, plugins) is unchanged."""
    from cva_rec.backbones.fast_variants import FAST_VARIANTS

    return FAST_VARIANTS.get(model_class, model_class)


def attach_encoder(model: nn.Module, cfg: Mapping[str, Any], content: Optional[ItemContent] = None,
                   encoder: Optional[ItemEncoder] = None, item_tokens=None, trained_items=None) -> nn.Module:
    """Put ``encoder`` (or the configured one) where RecBole built its item table."""
    if encoder is None:
        enc_cfg = dict(cfg["item_encoder"])
        if enc_cfg.get("name") == "id":
            from cva_rec.encoders.id import IdEncoder

            encoder = IdEncoder.adopt(model.item_embedding)  # keep RecBole's own initialised table
        else:
            encoder = build_encoder(enc_cfg, model.n_items, model.item_embedding.embedding_dim, content,
                                    item_tokens=item_tokens, trained_items=trained_items)
    model.item_embedding = ItemEmbeddingAdapter(encoder)
    if hasattr(model, "fit_token_layout"):  # a backbone whose layers are sized by the token count (FMLP-Rec)
        model.fit_token_layout(encoder.tokens_per_item)
    return model


def item_encoder_of(model: nn.Module) -> ItemEncoder:
    return model.item_embedding.encoder


def seq_output(model: nn.Module, interaction, items: Optional[EncodedItems] = None) -> torch.Tensor:
    """The user state [B, d] for a batch, optionally reading this step's encoded items."""
    return model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN], items=items)


__all__ = ["BACKBONES", "Backbone", "ItemEmbeddingAdapter", "build_backbone", "attach_encoder", "item_encoder_of",
           "seq_output", "TokenSASRec", "TokenGRU4Rec", "TokenNextItNet", "TokenNARM", "TokenSTAMP", "TokenBERT4Rec",
           "FMLPRec"]
