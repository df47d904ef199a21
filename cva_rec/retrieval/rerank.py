"""Dense rerank (GRDR sec. 3.4): a trained cva_rec model scores only each user's recalled candidates.

The scores are the ones full ranking computes (the backbone's sequence output dotted with the
item table ``full_sort_predict`` reads), restricted to the candidates; ranks follow
``training/evaluation.py``: padding and the user's history are masked (the target never is),
the target's place among tied scores is the same per-user uniform draw, so a candidate set
holding every item gives exactly the full-ranking rank. A target that was not recalled gets
rank ``n_items`` (a miss at every cutoff).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from cva_rec.backbones import seq_output


@torch.no_grad()
def candidate_scores(model: torch.nn.Module, interaction, candidates: torch.Tensor) -> torch.Tensor:
    """[U, C] candidate item ids -> [U, C] scores (the table is the encoder's cached all-items table)."""
    return user_candidate_scores(model, seq_output(model, interaction), candidates)


@torch.no_grad()
def user_candidate_scores(model: torch.nn.Module, user: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """User states [U, d] (the model's sequence output, already computed) x [U, C] candidates -> [U, C] scores."""
    table = model.item_embedding.weight  # what full_sort_predict multiplies with (cached in eval mode)
    return torch.bmm(table[candidates], user[:, :, None]).squeeze(2)


def candidate_ranks(scores: torch.Tensor, candidates: torch.Tensor, targets: torch.Tensor, history: Optional[tuple],
                    tie_uniform: torch.Tensor, n_items: int) -> torch.Tensor:
    """Rank of each user's target among its candidates (0 = top), as ``target_ranks`` ranks over all items.

    scores, candidates [U, C] (0 = padding); history: (rows, items) pairs to mask, or None."""
    scores = scores.float().clone()
    is_target = candidates == targets[:, None]
    masked = candidates <= 0
    if history is not None and len(history[0]):
        h_rows, h_items = (torch.as_tensor(h).long().cpu() for h in history)
        span = int(max(n_items, int(candidates.max()) + 1))
        seen = (h_rows * span + h_items).numpy()
        keys = (torch.arange(len(candidates))[:, None] * span + candidates.cpu()).numpy()
        masked |= torch.from_numpy(np.isin(keys, seen)).to(candidates.device)
    scores = scores.masked_fill(masked & ~is_target, float("-inf"))
    found = is_target.any(1)
    t_score = torch.where(is_target, scores, torch.full_like(scores, float("-inf"))).max(1).values
    others = ~is_target & ~masked
    higher = ((scores > t_score[:, None]) & others).sum(1)
    ties = ((scores == t_score[:, None]) & others).sum(1)
    u = tie_uniform.to(device=ties.device, dtype=torch.float64)
    ranks = higher + (u * (ties + 1).to(u.dtype)).long().clamp_max(ties)
    return torch.where(found, ranks, torch.full_like(ranks, n_items))
