"""A config + data -> the RecBole backbone with its item encoder, and the LightningModule around it."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from cva_rec.backbones import build_backbone
from cva_rec.data.dataset import SequentialData
from cva_rec.training.losses import build_loss

log = logging.getLogger("cva_rec")


def build_model(cfg: Mapping[str, Any], data: SequentialData, content=None):
    from recbole.utils import init_seed

    # RecBole's quick start re-seeds right before building the model: same here, so the
    # initial weights equal those of RecBole's own pipeline for the same seed.
    init_seed(cfg["train"]["seed"], True)
    # the items of the training part only (never a held-out item: dataset.cold_items): code tables
    # leave rows no training item uses out of every item's vector (prefix_rows: trained)
    return build_backbone(cfg, data.config, data.train._dataset, content, trained_items=data.seen_in_training)


def build_module(cfg: Mapping[str, Any], data: SequentialData, content=None):
    from cva_rec.training.module import SeqRecModule

    model = build_model(cfg, data, content)
    loss = build_loss(cfg, data.item_popularity, data)
    if loss.encodes_all_items and cfg["item_encoder"]["name"] != "id":
        log.warning(
            "loss %s with content encoder %r encodes all %d items every training step; "
            "inbatch_softmax or sampled_softmax encode only the batch's items",
            cfg["loss"]["name"], cfg["item_encoder"]["name"], data.n_items,
        )
    return SeqRecModule(cfg, model, loss, data.item_popularity, seen_in_training=data.seen_in_training, cold_items=data.cold_items)
