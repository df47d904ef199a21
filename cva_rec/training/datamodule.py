"""A LightningDataModule over RecBole's datasets and loaders.

RecBole's own loaders subclass ``torch.utils.data.DataLoader`` with a custom constructor,
which Lightning cannot re-instantiate to add its ``DistributedSampler``. We therefore
build plain DataLoaders over the same row indices and reuse RecBole's ``collate_fn`` (which
does the real work: slicing the dataset and building ``Interaction`` batches). With one
process the shuffling is seeded exactly as RecBole seeds its own loader, so batches match.
"""
from __future__ import annotations

from typing import Any, Mapping

import lightning as L
import torch
from torch.utils.data import DataLoader

from cva_rec.data import SequentialData, UserHistory


class EvalCollate:
    """RecBole full-sort eval batch -> (interaction, users, targets, history rows, history items)."""

    def __init__(self, recbole_loader, history: UserHistory):
        self.loader, self.history = recbole_loader, history

    def __call__(self, index):
        interaction, _, _, positive_i = self.loader.collate_fn(index)
        users = interaction[self.loader._dataset.uid_field]
        rows, items = self.history.index_pairs(users.numpy())
        return interaction, users, positive_i, rows, items


class RecBoleDataModule(L.LightningDataModule):
    def __init__(self, data: SequentialData, cfg: Mapping[str, Any]):
        super().__init__()
        self.data, self.cfg = data, cfg
        # RecBole seeds each loader's generator with config["seed"]; so do we
        self.generator = torch.Generator()
        self.generator.manual_seed(int(data.config["seed"]))

    def train_dataloader(self):
        rb = self.data.train
        return DataLoader(
            list(range(rb.sample_size)),
            batch_size=rb.step,
            shuffle=True,
            generator=self.generator,
            collate_fn=rb.collate_fn,
            num_workers=self.cfg["train"]["num_workers"],
            persistent_workers=self.cfg["train"]["num_workers"] > 0,
        )

    def _eval_loader(self, rb, history):
        # a generator of its own: a DataLoader without one draws its base seed from the
        # global RNG on every iteration, which would shift the dropout stream after each
        # validation (RecBole's loaders all carry a generator).
        g = torch.Generator()
        g.manual_seed(int(self.data.config["seed"]))
        return DataLoader(list(range(rb.sample_size)), batch_size=rb.step, shuffle=False, collate_fn=EvalCollate(rb, history), generator=g)

    def val_dataloader(self):
        return self._eval_loader(self.data.valid, self.data.valid_history)

    def test_dataloader(self):
        return self._eval_loader(self.data.test, self.data.test_history)
