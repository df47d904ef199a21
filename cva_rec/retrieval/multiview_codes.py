"""Multi-view codes: ``V`` code paths of ``L`` levels per item, and the file that keeps them.

``codes[i, v]`` is item ``i``'s path in view ``v`` (GRDR sec. 3.2: one view per learned projection;
all views quantised by one shared residual codebook, so paths of different views live in one
code space and one trie). ``view_names[v]`` records what each view is, e.g. ``view0 .. view3``
for the multi-view tokenizer or ``room`` for single-view RQ-KMeans codes from ``cva-rec tokenize``
(which load here as ``V = 1``). Rows follow ``item_ids`` (item tokens); ``for_dataset`` aligns
them to a RecBole dataset's internal ids and refuses codes that miss any of its items.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence

import numpy as np
import torch

from cva_rec.errors import CheckpointError, ConfigError
from cva_rec.io import atomic_write, load_numpy

FORMAT = "cva_rec.multiview_codes"
PAD_TOKEN = "[PAD]"


@dataclass
class MultiViewCodes:
    codes: torch.Tensor  # [n, V, L] int64, -1 = no code
    n_codes: int
    item_ids: List[str] = field(default_factory=list)
    view_names: List[str] = field(default_factory=list)

    def __post_init__(self):
        self.codes = torch.as_tensor(self.codes, dtype=torch.long)
        if self.codes.dim() != 3:
            raise ConfigError(f"multi-view codes must be [items, views, levels], got shape {list(self.codes.shape)}")
        if self.item_ids and len(self.item_ids) != self.codes.shape[0]:
            raise ConfigError(f"{len(self.item_ids)} item ids for {self.codes.shape[0]} rows of codes")
        if not self.view_names:
            self.view_names = [f"view{v}" for v in range(self.views)]
        if len(self.view_names) != self.views:
            raise ConfigError(f"{len(self.view_names)} view names for {self.views} views")

    @property
    def n_items(self) -> int:
        return self.codes.shape[0]

    @property
    def views(self) -> int:
        return self.codes.shape[1]

    @property
    def levels(self) -> int:
        return self.codes.shape[2]

    @classmethod
    def from_semantic_codes(cls, sc) -> "MultiViewCodes":
        """Single-view RQ-KMeans codes (``cva-rec tokenize``'s ``codes.npz``): the room code is the view."""
        return cls(sc.room_codes[:, None, :].clone(), sc.n_codes, list(sc.item_ids), ["room"])

    def for_dataset(self, tokens: Sequence[str]) -> "MultiViewCodes":
        """Rows in the order of a dataset's internal ids (row 0 = ``[PAD]``, codes -1); every other
        item of the dataset must have a complete path in every view."""
        if list(self.item_ids) == list(tokens):
            aligned = self
        else:
            if not self.item_ids:
                raise ConfigError("these codes carry no item ids, so they cannot be aligned to a dataset")
            row_of = {t: i for i, t in enumerate(self.item_ids)}
            rows = torch.tensor([row_of.get(t, -1) if t != PAD_TOKEN else -1 for t in tokens], dtype=torch.long)
            have = rows >= 0
            codes = torch.where(have[:, None, None], self.codes[rows.clamp_min(0)], torch.full_like(self.codes[:1], -1).expand(len(rows), -1, -1))
            aligned = MultiViewCodes(codes, self.n_codes, list(tokens), list(self.view_names))
        complete = (aligned.codes >= 0).all(2).all(1)
        missing = [t for t, ok in zip(tokens, complete.tolist()) if not ok and t != PAD_TOKEN]
        if missing:
            raise ConfigError(f"the codes do not cover {len(missing)} of the dataset's {len(tokens) - 1} items "
                              f"(e.g. {missing[:3]}): every item needs a code path in every view; "
                              "re-tokenize the dataset's items")
        return aligned

    # -- persistence (.npz, atomic) -----------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        dtype = np.int16 if self.n_codes <= np.iinfo(np.int16).max else np.int32
        atomic_write(path, lambda f: np.savez(
            f, format=np.array(FORMAT), version=np.array(1), codes=self.codes.numpy().astype(dtype),
            n_codes=np.array(self.n_codes), item_ids=np.array(list(self.item_ids), dtype=str),
            view_names=np.array(list(self.view_names), dtype=str)), mode="wb")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MultiViewCodes":
        """A multi-view codes file, or a single-view ``codes.npz`` of ``cva-rec tokenize`` (``V = 1``);
        a directory means the ``codes.npz`` inside it."""
        path = Path(path)
        if path.is_dir():
            path = path / "codes.npz"
        if not path.is_file():
            raise CheckpointError(f"no codes file at {path}")
        try:
            with load_numpy(path, "codes") as z:
                fmt = str(z["format"])
                if fmt == FORMAT:
                    return cls(torch.from_numpy(z["codes"].astype(np.int64)), int(z["n_codes"]),
                               [str(t) for t in z["item_ids"]], [str(v) for v in z["view_names"]])
        except Exception as exc:
            raise CheckpointError(f"{path}: unreadable codes file ({type(exc).__name__}: {str(exc)[:120]})") from None
        from cva_rec.semantic_ids.codes import SemanticCodes

        return cls.from_semantic_codes(SemanticCodes.load(path))
