"""Synthetic interaction logs shaped like MicroLens, so that scale is testable anywhere.

What "shaped like MicroLens" means here (the numbers come from what is published):

* MicroLens-1M (Ni et al. 2023, the MicroLens benchmark): 1,000,000 users, 91,402 items,
  9,095,620 interactions; :data:`MICROLENS_1M` (the defaults of ``cva-rec synth``).
* The *shape* of the two distributions comes from the only published per-user / per-item
  statistics, those of MicroLens-100k in the CVA paper (App. D, Tables 9 and 14):
  user sequence length min 5, quartiles 5 / 6 / 8, mean 7.19, max 218 (100,000 users);
  item frequency mean 36.45, quartiles 9 / 22 / 49, max 640, 2.34 % of items seen once
  (19,738 items).

Both are drawn from Lomax (Pareto type II, i.e. power-law tail) distributions whose shapes were
fitted to those quartiles: a user's length is ``min_length + floor(s * X)`` with
``X ~ Lomax(3)`` (at MicroLens-100k's size this gives quartiles 5 / 6 / 8 and a max near 220),
and an item's popularity weight is ``Lomax(6)`` (quartiles 0.25 / 0.6 / 1.3 of the mean,
matching 9 / 22 / 49 of 36.45). The scale ``s`` is solved so the lengths sum to exactly the
number of interactions asked for; the shapes stay those of MicroLens at any size.

Each user's items are distinct (drawn by popularity, repeats redrawn); every item occurs at
least once. Timestamps are unix seconds: a user starts at a uniform time in a two-year window
and the gaps are exponential with a one-hour mean, so some gaps are under a minute (as in real
logs, where RecBole's float32 timestamps then tie). Rows are written in time order, like a log.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cva_rec.errors import ConfigError
from cva_rec.io import atomic_write

MICROLENS_1M = {"users": 1_000_000, "items": 91_402, "interactions": 9_095_620}
USER_LENGTH_SHAPE = 3.0  # Lomax shape of (length - min_length)
ITEM_WEIGHT_SHAPE = 6.0  # Lomax shape of item popularity weights
START_TIME = 1_609_459_200  # 2021-01-01T00:00:00Z
START_WINDOW_SECONDS = 2 * 365 * 86_400
MEAN_GAP_SECONDS = 3_600.0
HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


@dataclass
class SyntheticLog:
    """One interaction per row, in time order (ties: user, then the user's order)."""

    users: np.ndarray  # int64, 0..n_users-1
    items: np.ndarray  # int64, 0..n_items-1
    times: np.ndarray  # int64 unix seconds
    user_tokens: np.ndarray  # [n_users] int64: the token written for user u
    item_tokens: np.ndarray  # [n_items] int64


def user_lengths(n_users: int, n_interactions: int, min_length: int, max_length: int, rng: np.random.Generator) -> np.ndarray:
    """[n_users] lengths >= min_length with a Lomax(3) tail, summing to exactly n_interactions."""
    extra_total = n_interactions - n_users * min_length
    x = rng.pareto(USER_LENGTH_SHAPE, n_users)  # numpy's pareto is the Lomax distribution
    cap = max_length - min_length
    lo, hi = 0.0, 1.0
    while np.minimum(np.floor(hi * x), cap).sum() < extra_total:  # bracket the scale
        hi *= 2.0
        if hi > 1e12:
            raise ConfigError(f"cannot spread {n_interactions} interactions over {n_users} users with at most {max_length} each")
    for _ in range(100):  # bisection on the (monotone) total
        mid = (lo + hi) / 2
        if np.minimum(np.floor(mid * x), cap).sum() <= extra_total:
            lo = mid
        else:
            hi = mid
    extra = np.minimum(np.floor(lo * x), cap).astype(np.int64)
    short = extra_total - int(extra.sum())  # < one unit per user: the largest remainders get +1
    if short:
        frac = np.where(extra < cap, lo * x - np.floor(lo * x), -1.0)
        extra[np.argsort(-frac, kind="stable")[:short]] += 1
    return extra + min_length


def item_weights(n_items: int, rng: np.random.Generator) -> np.ndarray:
    w = rng.pareto(ITEM_WEIGHT_SHAPE, n_items) + 1e-9
    return w / w.sum()


def _redraw_repeats(users: np.ndarray, items: np.ndarray, probs: np.ndarray, rng: np.random.Generator, rounds: int = 30) -> None:
    """Make each user's items distinct, in place: repeats are redrawn by popularity, then uniformly."""
    n_items = len(probs)
    for r in range(rounds + 1):
        order = np.lexsort((items, users))
        su, si = users[order], items[order]
        dup = np.zeros(len(order), dtype=bool)
        dup[1:] = (su[1:] == su[:-1]) & (si[1:] == si[:-1])
        if not dup.any():
            return
        where = order[dup]
        if r < rounds:
            items[where] = rng.choice(n_items, size=len(where), p=probs)
        else:  # a user with most of a small catalogue: pick uniformly among the items they lack
            for row in where:
                taken = set(items[users == users[row]].tolist())
                free = np.setdiff1d(np.arange(n_items), np.fromiter(taken, dtype=np.int64))
                items[row] = rng.choice(free)
            return


def _cover_catalogue(items: np.ndarray, n_items: int, rng: np.random.Generator) -> None:
    """Every item occurs at least once: a missing item replaces a repeat occurrence of another item.

    A missing item occurs nowhere, so no user gets it twice; each donor item keeps its first occurrence.
    """
    missing = np.flatnonzero(np.bincount(items, minlength=n_items) == 0)
    if not len(missing):
        return
    order = np.argsort(items, kind="stable")
    first = np.ones(len(items), dtype=bool)
    first[1:] = items[order][1:] != items[order][:-1]
    donors = order[~first]
    items[rng.choice(donors, size=len(missing), replace=False)] = missing


def generate(n_users: int, n_items: int, n_interactions: int, seed: int, min_length: int = 5) -> SyntheticLog:
    if n_users < 1 or n_items < 2:
        raise ConfigError(f"--users must be >= 1 and --items >= 2 (got {n_users}, {n_items})")
    if n_interactions < n_users * min_length:
        raise ConfigError(f"--interactions {n_interactions} < {min_length} x {n_users} users: every user needs at least {min_length}")
    max_length = min(n_items, max(min_length, n_interactions))
    if n_interactions > n_users * max_length:
        raise ConfigError(f"--interactions {n_interactions} > {n_users} users x {n_items} items: users' items are distinct")
    if n_interactions < n_items:
        raise ConfigError(f"--interactions {n_interactions} < --items {n_items}: every item must occur at least once")
    rng = np.random.default_rng(seed)
    lengths = user_lengths(n_users, n_interactions, min_length, max_length, rng)
    probs = item_weights(n_items, rng)
    users = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    items = rng.choice(n_items, size=n_interactions, p=probs).astype(np.int64)
    _redraw_repeats(users, items, probs, rng)
    _cover_catalogue(items, n_items, rng)
    # times: per user a start plus cumulative exponential gaps (whole seconds, >= 1)
    start = START_TIME + rng.integers(0, START_WINDOW_SECONDS, n_users)
    gaps = 1 + np.floor(rng.exponential(MEAN_GAP_SECONDS, n_interactions)).astype(np.int64)
    first_row = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    gaps[first_row] = 0
    cum = np.cumsum(gaps)
    times = start[users] + cum - np.repeat(cum[first_row], lengths)
    order = np.lexsort((np.arange(n_interactions), times))  # time order; ties keep (user, position) order
    user_tokens = rng.permutation(n_users).astype(np.int64) + 1  # ids unrelated to activity / popularity
    item_tokens = rng.permutation(n_items).astype(np.int64) + 1
    return SyntheticLog(users[order], items[order], times[order], user_tokens, item_tokens)


def write_inter(path: Path, log: SyntheticLog, chunk_rows: int = 1_000_000) -> None:
    """RecBole atomic ``.inter`` file, written atomically, ``chunk_rows`` rows at a time."""

    def write(fh):
        fh.write(HEADER)
        for lo in range(0, len(log.users), chunk_rows):
            sl = slice(lo, lo + chunk_rows)
            block = np.stack([log.user_tokens[log.users[sl]], log.item_tokens[log.items[sl]], log.times[sl]], axis=1)
            np.savetxt(fh, block, fmt="%d", delimiter="\t")

    atomic_write(path, write)


def write_random_store(path: Path, item_tokens: np.ndarray, frames: int, dim: int, seed: int, batch: int = 4096) -> None:
    """A feature store of standard-normal float16 features, ``frames`` valid frames per item."""
    from cva_rec.features.store import FeatureStoreWriter

    ids = [str(t) for t in item_tokens]
    writer = FeatureStoreWriter(path, ids, max_frames=frames, dim=dim, dtype="float16",
                                metadata={"encoder": "random-normal", "sampler": "synthetic", "seed": int(seed)}, overwrite=True)
    for lo in writer.pending_rows()[::batch]:
        rows = np.arange(lo, min(lo + batch, len(ids)))
        rng = np.random.default_rng([int(seed), int(lo)])  # a batch's bytes depend only on (seed, first row)
        writer.write(rows, rng.standard_normal((len(rows), frames, dim), dtype=np.float32), np.full(len(rows), frames))
    writer.finalize()


def summary(log: SyntheticLog) -> dict:
    """The realised statistics, in MicroLens' terms (per-user lengths, per-item frequencies)."""
    lengths = np.bincount(log.users)
    freq = np.bincount(log.items)

    def stats(x):
        q = np.percentile(x, [25, 50, 75])
        return {"mean": float(x.mean()), "min": int(x.min()), "max": int(x.max()),
                "p25": float(q[0]), "p50": float(q[1]), "p75": float(q[2])}

    return {"users": int(len(lengths)), "items": int(len(freq)), "interactions": int(len(log.users)),
            "user_length": stats(lengths), "item_frequency": {**stats(freq), "share_seen_once": float((freq == 1).mean())}}


def synthesize(out: Path, name: str, n_users: int, n_items: int, n_interactions: int, seed: int,
               feature_dim: int = 0, frames: int = 5, min_length: int = 5) -> dict:
    """Write ``out/<name>/<name>.inter`` (+ ``out/<name>/features`` when feature_dim > 0) and ``synth.json``."""
    folder = Path(out) / name
    log = generate(n_users, n_items, n_interactions, seed, min_length)
    write_inter(folder / f"{name}.inter", log)
    info = {"seed": seed, "min_length": min_length, "user_length_shape": USER_LENGTH_SHAPE,
            "item_weight_shape": ITEM_WEIGHT_SHAPE, **summary(log)}
    if feature_dim:
        write_random_store(folder / "features", log.item_tokens, frames, feature_dim, seed)
        info["feature_store"] = {"path": "features", "frames": frames, "dim": feature_dim, "dtype": "float16"}
    atomic_write(folder / "synth.json", lambda fh: fh.write(json.dumps(info, indent=2) + "\n"))
    return info


def ensure_synthetic(out: Path, name: str, n_users: int, n_items: int, n_interactions: int, seed: int) -> bool:
    """:func:`synthesize` ``out/<name>`` unless its ``synth.json`` already records these sizes and seed (a
    benchmark reuses the log it wrote before: minutes at millions of rows); True when it was written now."""
    info_path = Path(out) / name / "synth.json"
    want = {"users": n_users, "items": n_items, "interactions": n_interactions, "seed": seed}
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        info = None
    if isinstance(info, dict) and all(info.get(k) == v for k, v in want.items()) and (Path(out) / name / f"{name}.inter").is_file():
        return False
    synthesize(out, name, n_users, n_items, n_interactions, seed)
    return True
