"""Slice and room codes (FLUID sec. 3.2) and the ``SemanticCodes`` container.

* **Slice code**: the RQ-KMeans code of one content segment (frame, clip, text segment).
* **Room code**: the item-level code, a per-level **majority vote** over the item's segments
  (at each level l, the most frequent c_l among its slice codes).
* **Tie-break** (several codewords equally frequent at a level), ``tie_break=``:

  - ``"nearest_mean"`` (default): the tied codeword whose level-l centroid is nearest to the
    item's *mean segment vector* after subtracting the room centroids already chosen at
    levels < l. It is what residual quantisation of the item's mean embedding would pick if
    restricted to the tied codewords, so the room code stays on a path that describes the
    item as a whole, and it follows the room path chosen so far (levels are not mixed).
    Remaining exact ties (equal distances) go to the smallest codeword.
  - ``"smallest"``: the smallest tied codeword. Needs no vectors; used when only codes are
    available (and by ``nearest_mean`` when no tokenizer/vectors are given).

  Both are deterministic; neither depends on segment order.
* Items with no segments get code -1 at every level (embedders map them to the zero vector).

Which slice an interaction carries: from the data when it has a segment field
(``SemanticIdEncoder.slice_codes(ids, segment=...)``); otherwise ``SliceRule``: in training a
random valid segment (seeded generator), in evaluation a fixed one (``first`` / ``middle`` /
``last``), both configurable.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from cva_rec.errors import CheckpointError, ConfigError
from cva_rec.fingerprints import value_digest
from cva_rec.io import atomic_write, load_numpy

TIE_BREAKS = ("nearest_mean", "smallest")
FIXED_SLICES = ("first", "middle", "last")
PAD_TOKEN = "[PAD]"


# -- slice and room codes -----------------------------------------------------------------
def segment_mask(num_segments: torch.Tensor, max_segments: int) -> torch.Tensor:
    return torch.arange(max_segments)[None, :] < torch.as_tensor(num_segments).long()[:, None]


def slice_codes(tokenizer, features, num_segments, chunk_items: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode every valid segment: features [n, S, d] (+ counts [n]) -> (codes [n, S, L] with -1 on
    padding, mask [n, S]). ``features`` may be a numpy memmap; it is read in chunks of items."""
    n, s = features.shape[:2]
    counts = torch.as_tensor(np.asarray(num_segments)).long().clamp(0, s)
    mask = segment_mask(counts, s)
    out = torch.full((n, s, tokenizer.levels), -1, dtype=torch.long)
    for start in range(0, n, chunk_items):
        stop = min(n, start + chunk_items)
        block = torch.from_numpy(np.array(features[start:stop], dtype=np.float32))
        m = mask[start:stop]
        if m.any():
            codes = tokenizer.encode(block[m])
            part = out[start:stop]
            part[m] = codes
    return out, mask


def majority_vote(codes: torch.Tensor, mask: torch.Tensor, n_codes: int, tie_break: str = "nearest_mean",
                  tokenizer=None, features=None, chunk_items: int = 8192) -> torch.Tensor:
    """Per-level majority vote: slice codes [n, S, L] + mask [n, S] -> room codes [n, L].

    ``tie_break="nearest_mean"`` uses ``tokenizer`` (an RQKMeans) and the segment ``features``
    [n, S, d]; without them it falls back to ``"smallest"``.
    """
    if tie_break not in TIE_BREAKS:
        raise ConfigError(f"unknown tie_break {tie_break!r}; known: {', '.join(TIE_BREAKS)}")
    n, s, levels = codes.shape
    use_mean = tie_break == "nearest_mean" and tokenizer is not None and features is not None
    room = torch.full((n, levels), -1, dtype=torch.long)
    for start in range(0, n, chunk_items):
        stop = min(n, start + chunk_items)
        c, m = codes[start:stop], mask[start:stop]
        valid = m.any(1)
        safe = c.clamp_min(0)
        # votes[i, l, k] = number of item i's valid segments with code k at level l
        votes = torch.zeros(stop - start, levels, n_codes, dtype=torch.long)
        votes.scatter_add_(2, safe.transpose(1, 2), m[:, None, :].expand(-1, levels, -1).long())
        tied = votes == votes.max(2, keepdim=True).values  # [b, L, N]
        if use_mean:
            block = _mean_vectors(features[start:stop], m, tokenizer)
            chosen = torch.empty(stop - start, levels, dtype=torch.long)
            for level in range(levels):
                cent = tokenizer.centroids[level].cpu()
                d2 = torch.cdist(block.double(), cent.double()).pow(2)
                d2 = d2.masked_fill(~tied[:, level], float("inf"))
                # argmin returns the first (smallest) codeword among exactly equal distances
                chosen[:, level] = d2.argmin(1)
                block = block - cent[chosen[:, level]]
        else:
            chosen = tied.long().argmax(2)  # first True = smallest tied codeword
        room[start:stop] = torch.where(valid[:, None], chosen, torch.full_like(chosen, -1))
    return room


def _mean_vectors(features, mask: torch.Tensor, tokenizer) -> torch.Tensor:
    """Mean of the valid segment vectors, in the tokenizer's quantised space (after PCA)."""
    x = torch.from_numpy(np.array(features, dtype=np.float32))
    b, s, d = x.shape
    flat = tokenizer.transform(x.reshape(b * s, d)).cpu().reshape(b, s, -1)
    w = mask.float()[..., None]
    return (flat * w).sum(1) / w.sum(1).clamp_min(1.0)


# -- which slice an interaction carries ---------------------------------------------------
@dataclass
class SliceRule:
    """``train``: ``"random"`` or a fixed rule; ``eval``: ``"first"``, ``"middle"`` or ``"last"``."""

    train: str = "random"
    eval: str = "first"

    def __post_init__(self):
        if self.train not in ("random", *FIXED_SLICES):
            raise ConfigError(f"slice rule for training must be random, first, middle or last, got {self.train!r}")
        if self.eval not in FIXED_SLICES:
            raise ConfigError(f"slice rule for evaluation must be first, middle or last, got {self.eval!r}")

    def segment(self, counts: torch.Tensor, training: bool, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Segment index per entry of ``counts`` (valid-segment counts, any shape); 0 where count is 0."""
        rule = self.train if training else self.eval
        counts = counts.long()
        if rule == "random":
            u = torch.rand(counts.shape, generator=generator, device="cpu").to(counts.device)
            idx = (u * counts).long()
        elif rule == "first":
            idx = torch.zeros_like(counts)
        elif rule == "middle":
            idx = (counts - 1).clamp_min(0) // 2
        else:
            idx = (counts - 1).clamp_min(0)
        return torch.minimum(idx, (counts - 1).clamp_min(0))


_CODE_ARRAYS = ("slice_codes", "slice_mask", "room_codes", "n_codes", "item_ids")


def _verify_content(path: Path, z) -> None:
    """The arrays are those the file was written with (codes files from before the hash: not checked)."""
    if "content_sha256" not in z.files:
        return
    if value_digest({k: z[k] for k in _CODE_ARRAYS}) != str(z["content_sha256"]):
        raise CheckpointError(f"{path}: its codes differ from the sha256 recorded in the file when `cva-rec tokenize` "
                              "wrote it (changed since); run tokenize again or restore the file")


# -- the container --------------------------------------------------------------------------
@dataclass
class SemanticCodes:
    """Per-item slice codes [n, S, L] (+ mask [n, S]) and room codes [n, L]; -1 = no code.

    Rows follow ``item_ids`` (tokens). ``align(tokens)`` reorders them to a RecBole dataset's
    internal ids (``dataset.field2id_token[iid_field]``, row 0 = ``[PAD]``, -1 codes), which is
    what the ``semantic_id`` item encoder needs.
    """

    slice_codes: torch.Tensor
    slice_mask: torch.Tensor
    room_codes: torch.Tensor
    n_codes: int
    item_ids: list = field(default_factory=list)

    def __post_init__(self):
        n, s, levels = self.slice_codes.shape
        if self.slice_mask.shape != (n, s) or self.room_codes.shape != (n, levels):
            raise ConfigError(f"inconsistent code shapes: slice {tuple(self.slice_codes.shape)}, mask "
                              f"{tuple(self.slice_mask.shape)}, room {tuple(self.room_codes.shape)}")
        if self.item_ids and len(self.item_ids) != n:
            raise ConfigError(f"{len(self.item_ids)} item ids for {n} rows of codes")

    @property
    def n_items(self) -> int:
        return self.slice_codes.shape[0]

    @property
    def levels(self) -> int:
        return self.slice_codes.shape[2]

    @property
    def num_segments(self) -> torch.Tensor:
        return self.slice_mask.sum(1)

    @classmethod
    def from_features(cls, tokenizer, features, num_segments, item_ids: Sequence[str] = (),
                      tie_break: str = "nearest_mean") -> "SemanticCodes":
        """Encode segments [n, S, d] (store order) -> slice codes, then the room vote."""
        codes, mask = slice_codes(tokenizer, features, num_segments)
        room = majority_vote(codes, mask, tokenizer.codes, tie_break, tokenizer, features)
        return cls(codes, mask, room, tokenizer.codes, list(item_ids))

    @classmethod
    def from_vectors(cls, tokenizer, vectors, item_ids: Sequence[str] = ()) -> "SemanticCodes":
        """One vector per item [n, d]: slice = room = its code."""
        codes = tokenizer.encode(vectors)
        return cls(codes[:, None, :], torch.ones(len(codes), 1, dtype=torch.bool), codes.clone(), tokenizer.codes, list(item_ids))

    def align(self, tokens: Sequence[str]) -> "SemanticCodes":
        """Rows in the order of ``tokens`` (RecBole internal ids); tokens not here (and ``[PAD]``) get -1."""
        if not self.item_ids:
            raise ConfigError("these codes carry no item ids, so they cannot be aligned to a dataset")
        row_of = {t: i for i, t in enumerate(self.item_ids)}
        rows = torch.tensor([row_of.get(t, -1) if t != PAD_TOKEN else -1 for t in tokens], dtype=torch.long)
        have = rows >= 0
        src = rows.clamp_min(0)
        sc = torch.where(have[:, None, None], self.slice_codes[src], torch.full_like(self.slice_codes[src], -1))
        sm = self.slice_mask[src] & have[:, None]
        rc = torch.where(have[:, None], self.room_codes[src], torch.full_like(self.room_codes[src], -1))
        return SemanticCodes(sc, sm, rc, self.n_codes, list(tokens))

    @classmethod
    def for_items(cls, codes: Optional["SemanticCodes"], codes_path, item_tokens: Optional[Sequence[str]],
                  n_items: int) -> "SemanticCodes":
        """The codes an item encoder uses: loaded from ``codes_path`` (or given), rows aligned to the
        dataset's ``item_tokens`` when they carry other tokens, and exactly ``n_items`` rows."""
        if codes is None:
            codes = cls.load(codes_path)
        if item_tokens is not None and codes.item_ids and list(codes.item_ids) != list(item_tokens):
            codes = codes.align(item_tokens)  # codes file rows -> the dataset's internal item ids
        if codes.n_items != n_items:
            raise ConfigError(
                f"semantic codes have {codes.n_items} rows but the dataset has {n_items} items: align them first "
                f"(SemanticCodes.align(dataset.field2id_token[item_id_field]))")
        return codes

    # -- persistence (.npz, atomic) ---------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Atomic; the file records the sha256 of what it holds (``content_sha256``), checked by :meth:`load`."""
        path = Path(path)
        arrays = {"slice_codes": self.slice_codes.numpy().astype(np.int32), "slice_mask": self.slice_mask.numpy(),
                  "room_codes": self.room_codes.numpy().astype(np.int32), "n_codes": np.array(self.n_codes),
                  "item_ids": np.array(list(self.item_ids), dtype=str)}
        atomic_write(path, lambda f: np.savez(
            f, format=np.array("cva_rec.semantic_codes"), version=np.array(1), **arrays,
            content_sha256=np.array(value_digest(arrays))), mode="wb")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SemanticCodes":
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"no semantic codes file at {path}")
        try:
            with load_numpy(path, "semantic codes") as z:
                if str(z["format"]) != "cva_rec.semantic_codes":
                    raise CheckpointError(f"{path}: not a semantic codes file")
                _verify_content(path, z)
                return cls(torch.from_numpy(z["slice_codes"].astype(np.int64)), torch.from_numpy(z["slice_mask"].astype(bool)),
                           torch.from_numpy(z["room_codes"].astype(np.int64)), int(z["n_codes"]), [str(t) for t in z["item_ids"]])
        except CheckpointError:
            raise
        except Exception as exc:  # bad zip, missing key, wrong dtype, inconsistent shapes
            raise CheckpointError(f"{path}: unreadable semantic codes ({type(exc).__name__}: {str(exc)[:120]})") from None
