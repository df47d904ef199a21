"""A LightningDataModule over RecBole's datasets and loaders, single-process or DDP.

RecBole's own loaders subclass ``torch.utils.data.DataLoader`` with a custom constructor,
which Lightning cannot re-instantiate to add its ``DistributedSampler``. We therefore
build plain DataLoaders over the same row indices and reuse RecBole's ``collate_fn`` (which
does the real work: slicing the dataset and building ``Interaction`` batches). With one
process the shuffling is seeded exactly as RecBole seeds its own loader, so batches match.
The streaming engine (``cva_rec.data.streaming``) hands over batch sources with the same four
attributes a RecBole loader has here (``sample_size``, ``step``, ``collate_fn``, ``_dataset``).
Row indices are ``range`` objects, not lists (a list of 10M ints costs ~360 MB).

Under DDP (``trainer.world_size > 1``) the samplers are ours, both subclasses of
``DistributedSampler`` (so Lightning keeps them instead of injecting its own):

* training: :class:`GlobalBatchShardSampler`. ``train.batch_size`` is the *global* batch:
  every rank gets ``batch_size / world_size`` rows, and global batch ``k`` of a W-process run
  holds exactly the rows of batch ``k`` of the single-process run (same seed, same epoch).
  DDP averages the ranks' mean gradients, which is the single-process mean gradient; the
  only remaining differences are dropout masks and float summation order.
* evaluation: ``DistributedSampler(shuffle=False)``: rank r evaluates rows r, r+W, ...;
  the sampler pads with repeated rows so every rank has as many batches, and
  ``RankCollector.dedupe`` removes those repeats after the gather.
"""
from __future__ import annotations

from typing import Any, Iterator, List, Mapping

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from cva_rec.data.dataset import SequentialData, UserHistory
from cva_rec.errors import ConfigError


class EvalCollate:
    """RecBole full-sort eval batch -> (interaction, users, targets, history rows, history items)."""

    def __init__(self, recbole_loader, history: UserHistory):
        self.loader, self.history = recbole_loader, history

    def __call__(self, index):
        interaction, _, _, positive_i = self.loader.collate_fn(index)
        users = interaction[self.loader._dataset.uid_field]
        rows, items = self.history.index_pairs(users.numpy())
        return interaction, users, positive_i, rows, items


def _identity(batch):
    return batch


class GlobalBatchShardSampler(DistributedSampler):
    """This rank's share of the single-process run's shuffled batches.

    The single-process order is reproduced by iterating a reference ``DataLoader`` built
    exactly like the single-process one (same indices, batch size, ``shuffle=True`` and a
    generator seeded with ``seed``), so the generator is consumed exactly as there, whatever
    the torch version does per epoch. Epoch ``e`` is the reference loader's ``e``-th pass.

    Each global batch is split by stride (rank r takes rows r, r+W, ...). A last batch that
    does not divide by W is padded on the short ranks with a row of that batch, so every rank
    yields the same number of rows and batches (DDP hangs otherwise); at most W-1 rows per
    epoch are seen twice.
    """

    def __init__(self, n_rows: int, global_batch: int, seed: int, num_replicas: int, rank: int):
        if global_batch % num_replicas:
            raise ConfigError(
                f"train.batch_size={global_batch} is the global batch and must divide by the number of processes "
                f"({num_replicas}); use a multiple of {num_replicas}"
            )
        super().__init__(range(n_rows), num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.n_rows, self.global_batch, self.seed = n_rows, global_batch, int(seed)
        self.local_batch = global_batch // num_replicas
        self._reference = None
        self._passes = 0  # reference-loader epochs drawn so far

    def _reference_batches(self, epoch: int) -> List[List[int]]:
        if self._reference is None or self._passes > epoch:
            g = torch.Generator()
            g.manual_seed(self.seed)
            self._reference = DataLoader(range(self.n_rows), batch_size=self.global_batch, shuffle=True,
                                         generator=g, collate_fn=_identity)
            self._passes = 0
        while self._passes < epoch:  # e.g. resuming at epoch e: replay the earlier passes' draws
            for _ in self._reference:
                pass
            self._passes += 1
        self._passes += 1
        return list(self._reference)

    def __iter__(self) -> Iterator[int]:
        out: List[int] = []
        for batch in self._reference_batches(self.epoch):
            share = batch[self.rank::self.num_replicas]
            want = -(-len(batch) // self.num_replicas)  # ceil: the largest share of this batch
            out.extend(share + batch[: want - len(share)])
        return iter(out)

    def __len__(self) -> int:
        full, last = divmod(self.n_rows, self.global_batch)
        return full * self.local_batch + -(-last // self.num_replicas)


class ShuffledRows(Sampler):
    """``RandomSampler(range(n), generator=g)``'s order, without its list of ``n`` Python ints.

    ``RandomSampler`` yields from ``torch.randperm(n).tolist()``: at 10M training rows that list
    holds ~360 MB for the whole epoch (measured, docs/scale.md). This draws the same permutation
    from the same generator and hands it out a slice at a time, then makes the second ``randperm``
    draw ``RandomSampler`` makes at the end of an epoch, so the generator moves exactly as there
    and the batches equal RecBole's loader's (tests/training/test_shuffled_rows.py)."""

    SLICE = 65536

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator = int(n), generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        perm = torch.randperm(self.n, generator=self.generator)
        for start in range(0, self.n, self.SLICE):
            yield from perm[start:start + self.SLICE].tolist()
        del perm
        torch.randperm(self.n, generator=self.generator)  # RandomSampler's draw for num_samples % n (= 0 rows)


class RecBoleDataModule(L.LightningDataModule):
    def __init__(self, data: SequentialData, cfg: Mapping[str, Any]):
        super().__init__()
        self.data, self.cfg = data, cfg
        # RecBole seeds each loader's generator with config["seed"]; so do we
        self.generator = torch.Generator()
        self.generator.manual_seed(int(data.config["seed"]))

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _user_windows(self):
        """One training row per user (losses that say ``batches = "user_windows"``), or None."""
        from cva_rec.training.losses import LOSSES

        if getattr(LOSSES.get(self.cfg["loss"]["name"]), "batches", None) != "user_windows":
            return None
        return torch.from_numpy(self.data.sequences.training_windows(int(self.cfg["dataset"]["max_seq_length"])))

    def train_dataloader(self):
        rb = self.data.train
        workers = self.cfg["train"]["num_workers"]
        world, rank = self._world()
        windows = self._user_windows()
        if windows is not None:  # batches of users: train.batch_size users per (global) batch
            batch = int(self.cfg["train"]["batch_size"])
            if world > 1:
                sampler = GlobalBatchShardSampler(len(windows), batch, int(self.data.config["seed"]), world, rank)
                return DataLoader(windows, batch_size=sampler.local_batch, sampler=sampler, num_workers=workers)
            return DataLoader(windows, batch_size=batch, shuffle=True, generator=self.generator, num_workers=workers)
        if world > 1:
            sampler = GlobalBatchShardSampler(rb.sample_size, rb.step, int(self.data.config["seed"]), world, rank)
            return DataLoader(range(rb.sample_size), batch_size=sampler.local_batch, sampler=sampler,
                              collate_fn=rb.collate_fn, num_workers=workers, persistent_workers=workers > 0)
        return DataLoader(
            range(rb.sample_size),
            batch_size=rb.step,
            sampler=ShuffledRows(rb.sample_size, self.generator),  # = shuffle=True, without a list of every row
            generator=self.generator,
            collate_fn=rb.collate_fn,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def _eval_loader(self, rb, history):
        # a generator of its own: a DataLoader without one draws its base seed from the
        # global RNG on every iteration, which would shift the dropout stream after each
        # validation (RecBole's loaders all carry a generator).
        g = torch.Generator()
        g.manual_seed(int(self.data.config["seed"]))
        rows = range(rb.sample_size)
        world, rank = self._world()
        sampler = DistributedSampler(rows, num_replicas=world, rank=rank, shuffle=False) if world > 1 else None
        return DataLoader(rows, batch_size=rb.step, shuffle=False, sampler=sampler, collate_fn=EvalCollate(rb, history), generator=g)

    def val_dataloader(self):
        return self._eval_loader(self.data.valid, self.data.valid_history)

    def test_dataloader(self):
        return self._eval_loader(self.data.test, self.data.test_history)
