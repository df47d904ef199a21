"""The loss registry and the base class every loss (built-in or plugin) derives from."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from cva_rec.config.components import declare_loss_class
from cva_rec.registry import Registry

#: which loss.* keys each built-in loss reads is declared in cva_rec/config/components.py (LOSS_CATALOG);
#: a plugin loss may say so in a class attribute ``reads``
LOSSES: Registry[type] = Registry("loss", on_register=declare_loss_class)


class Loss(nn.Module):
    #: True when the loss scores the whole catalogue (content encoders then encode every item)
    encodes_all_items = False

    def __init__(self, cfg: Mapping[str, Any], item_popularity: torch.Tensor):
        super().__init__()
        self.cfg = cfg
        log_q = torch.log((item_popularity + 1.0) / (item_popularity + 1.0).sum())
        self.register_buffer("log_q", log_q, persistent=False)

    def forward(self, model: nn.Module, interaction) -> torch.Tensor:
        raise NotImplementedError


def negative_distribution(item_popularity: torch.Tensor, alpha: float):
    """(q, log q) of sampled negatives: q(item) ∝ (count + 1) ** alpha, padding never drawn (alpha = 0:
    uniform); +1 keeps unseen targets finite. log q of padding is 0 (never a candidate)."""
    probs = (item_popularity.clamp(min=0) + 1.0).pow(alpha)
    probs[0] = 0.0
    probs = probs / probs.sum()
    return probs, torch.where(probs > 0, probs.log(), torch.zeros_like(probs))
