"""What a beam search returns, shared by the dense and the small-batch search."""
from __future__ import annotations

from typing import NamedTuple

import torch


class BeamResult(NamedTuple):
    leaves: torch.Tensor  # [U, B] leaf index per beam, best first; -1 = no path
    scores: torch.Tensor  # [U, B] path log-likelihood (-inf for -1 leaves)
    paths: torch.Tensor  # [U, B, L] codes of each beam's path
