"""What a built dataset hands the loops: RecBole's loaders plus the protocol's histories and popularity."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from cva_rec.data.histories import UserHistory, UserSequences


@dataclass
class SequentialData:
    """Everything the loops need about one dataset split."""

    config: Any  # recbole.config.Config
    dataset: Any  # the filtered full dataset (RecBole's augmented rows; their order is RecBole's business)
    train: Any  # RecBole TrainDataLoader
    valid: Any  # RecBole FullSortEvalDataLoader
    test: Any
    item_popularity: torch.Tensor  # [n_items] training-target counts
    valid_history: UserHistory
    test_history: UserHistory
    sequences: UserSequences  # each user's whole sequence in split order
    seen_in_training: torch.Tensor  # [n_items] bool: occurs in training (input or target)
    cold_items: Optional[torch.Tensor] = None  # [n_items] bool: held out of training (dataset.cold_items)

    @property
    def n_items(self) -> int:
        return self.dataset.item_num

    @property
    def item_tokens(self) -> list:
        return list(self.dataset.field2id_token[self.dataset.iid_field])

    @classmethod
    def from_sequences(cls, config, dataset, train, valid, test, seqs: UserSequences, **extra) -> "SequentialData":
        """The protocol's histories, popularity and training items, derived from ``seqs`` in one place."""
        n_items = dataset.item_num
        return cls(config, dataset, train, valid, test,
                   item_popularity=seqs.training_popularity(n_items), valid_history=seqs.valid_history(),
                   test_history=seqs.test_history(), sequences=seqs, seen_in_training=seqs.seen_in_training(n_items), **extra)
