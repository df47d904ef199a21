"""Item cold start: a seeded fraction of the catalogue held out of training and validation.

``dataset.cold_items: 0.1`` picks 10% of the items (after RecBole's filters) with a seeded
permutation of the sorted item tokens (``dataset.cold_items_seed``), so the same tokens are
held out whatever the row order, the model or the training seed. Then, per user, in the order
RecBole's own augmentation sorts the rows (user, then time, stable):

* every interaction with a held-out item is removed, **except the user's last one**: a
  held-out item may be a test target, never a training or validation target nor an input
  to any window (training, validation or test);
* a user left with fewer than ``min_user_interactions`` interactions is removed (leave-two-out
  needs at least 3).

Held-out items stay in the item vocabulary, so they are candidates in every ranking, and their
content (feature store, semantic codes) is there for content encoders to encode them
inductively. The test metrics are broken down into ``warm`` and ``cold`` targets
(``RankCollector.compute``); held-out items are also ``inductive`` (never a training target).

**The history masked at test excludes held-out items a user saw before the test item**: those
interactions are removed like all other interactions with held-out items, so they are neither
model input nor mask. Masking them would use the very interactions the split claims to hold
out (the mask removes candidates, which is information about the user); not masking costs at
most one non-target candidate per removed interaction, and ``held_out_report`` counts them
(``SequentialData.dataset.cold_report``).

The removal happens in :class:`ColdItemSequentialDataset` right before RecBole's augmentation
(after filtering and id remapping), so RecBole still builds every window and split itself.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

from cva_rec.errors import ConfigError, DataError

PAD_TOKEN = "[PAD]"
log = logging.getLogger(__name__)


def choose_cold_items(tokens: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """[len(tokens)] bool mask of held-out items: ``round(fraction * n)`` of the non-padding
    tokens, chosen by a seeded permutation of the *sorted* tokens (independent of their order)."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"dataset.cold_items must be in [0, 1), got {fraction}")
    tokens = [str(t) for t in tokens]
    real = sorted(t for t in tokens if t != PAD_TOKEN)
    n_cold = int(round(fraction * len(real)))
    if fraction > 0 and n_cold == 0:
        raise DataError(f"dataset.cold_items={fraction} of {len(real)} items holds out no item")
    perm = np.random.default_rng(seed).permutation(len(real))
    cold = {real[i] for i in perm[:n_cold]}
    return np.array([t in cold for t in tokens], dtype=bool)


def rows_to_keep(users: np.ndarray, items: np.ndarray, cold: np.ndarray, min_user_interactions: int) -> np.ndarray:
    """Rows given in each user's order (grouped by user): bool mask of the rows that stay.

    Warm rows stay; a held-out item's row stays only as its user's last row; users left with
    fewer than ``min_user_interactions`` rows lose all of them.
    """
    users, items = np.asarray(users), np.asarray(items)
    if len(users) and np.any(users[1:] < users[:-1]):
        raise DataError("rows must be grouped by user in ascending user order")
    last = np.ones(len(users), dtype=bool)
    last[:-1] = users[1:] != users[:-1]
    keep = ~cold[items] | last
    counts = np.bincount(users[keep], minlength=int(users.max()) + 1 if len(users) else 0)
    return keep & (counts[users] >= max(min_user_interactions, 3))


def held_out_report(users: np.ndarray, items: np.ndarray, cold: np.ndarray, keep: np.ndarray) -> dict:
    """What the removal did (rows in each user's order, ``keep`` from :func:`rows_to_keep`)."""
    users, items = np.asarray(users), np.asarray(items)
    kept_users = np.unique(users[keep])
    last = np.ones(len(users), dtype=bool)
    last[:-1] = users[1:] != users[:-1]
    cold_targets = keep & last & cold[items]
    return {
        "cold_items": int(cold[1:].sum()),
        "rows_removed": int((~keep).sum()),
        "users_removed": int(len(np.unique(users)) - len(kept_users)),
        "users_with_cold_target": int(cold_targets.sum()),
        # held-out items a remaining user saw before: neither input nor masked at test
        "cold_rows_unmasked_at_test": int((~keep & cold[items] & np.isin(users, kept_users)).sum()),
    }


#: fewer users than this left after the hold-out: nothing to train, validate and test on (RecBole's sampler
#: then fails on an empty training set)
MIN_USERS_LEFT = 3
_FRACTIONS_TRIED = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01)


def check_enough_left(users, items, keep, tokens, fraction: float, seed: int, min_user: int) -> None:
    """One DataError line naming ``dataset.cold_items`` and a fraction that leaves enough users."""
    left = len(np.unique(np.asarray(users)[keep]))
    if left >= MIN_USERS_LEFT:
        return

    def users_left(f: float) -> int:
        return len(np.unique(users[rows_to_keep(users, items, choose_cold_items(tokens, f, seed), min_user)]))

    fits = next((f for f in _FRACTIONS_TRIED if f < fraction and users_left(f) >= MIN_USERS_LEFT), None)
    hint = f"dataset.cold_items={fits} leaves enough" if fits is not None else "no fraction from 0.01 up leaves enough; use 0"
    raise DataError(f"dataset.cold_items={fraction} leaves {left} users with >= {max(min_user, 3)} interactions once the "
                    f"held-out items are removed: too few to train and evaluate ({hint})")


def _sequential_dataset_class():
    import torch
    from recbole.data.dataset import SequentialDataset

    class ColdItemSequentialDataset(SequentialDataset):
        """RecBole's ``SequentialDataset`` with a seeded fraction of items held out (module docstring).

        ``cold_item_mask`` [item_num] bool and ``cold_report`` are set once the windows are built.
        """

        def __init__(self, config, fraction: float, seed: int, min_user_interactions: int):
            self.cold_fraction, self.cold_seed, self.cold_min_user = float(fraction), int(seed), int(min_user_interactions)
            self.cold_item_mask: Optional[np.ndarray] = None
            self.cold_report: dict = {}
            super().__init__(config)

        def data_augmentation(self):
            # the same stable sort RecBole's augmentation does first, so "last" is RecBole's last
            self.sort(by=[self.uid_field, self.time_field], ascending=True)
            tokens = self.field2id_token[self.iid_field]
            cold = choose_cold_items(tokens, self.cold_fraction, self.cold_seed)
            users = self.inter_feat[self.uid_field].numpy()
            items = self.inter_feat[self.iid_field].numpy()
            keep = rows_to_keep(users, items, cold, self.cold_min_user)
            check_enough_left(users, items, keep, tokens, self.cold_fraction, self.cold_seed, self.cold_min_user)
            self.cold_report = held_out_report(users, items, cold, keep)
            log.info("dataset.cold_items=%s (seed %d): %s", self.cold_fraction, self.cold_seed, self.cold_report)
            self.inter_feat = self.inter_feat[torch.from_numpy(np.flatnonzero(keep))]
            self.cold_item_mask = cold
            super().data_augmentation()

    return ColdItemSequentialDataset


def create_dataset(config, dataset_cfg):
    """RecBole's ``create_dataset``, or the held-out-items dataset when ``dataset.cold_items`` > 0."""
    from recbole.data import create_dataset as recbole_create_dataset

    fraction = float(dataset_cfg.get("cold_items") or 0.0)
    if fraction <= 0:
        return recbole_create_dataset(config)
    if config["benchmark_filename"] is not None:
        raise ConfigError("dataset.cold_items does not combine with RecBole benchmark files (pre-split data)")
    return _sequential_dataset_class()(config, fraction, int(dataset_cfg.get("cold_items_seed") or 0),
                                       int(dataset_cfg["min_user_interactions"]))
