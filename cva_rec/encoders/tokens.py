"""What an item encoder hands a backbone: a step's encoded items and the token layout of a history.

* :class:`EncodedItems`: the vectors of a set of distinct items, encoded once for one training
  step. The step (the loss) makes it, passes it to ``history`` and ``candidates`` and drops it:
  it is a value owned by the step, never state kept in a module.
* :class:`TokenLayout`: a batch of histories as the backbone reads it. One token per interaction
  by default; an encoder may give each interaction several tokens (LUCID late fusion: ID, slice,
  room), which share the interaction's position and carry a kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch


@dataclass(frozen=True)
class EncodedItems:
    ids: torch.Tensor  # [n] sorted distinct item ids
    vectors: torch.Tensor  # [n, d] their vectors

    @classmethod
    def of(cls, item_ids: torch.Tensor, encode) -> "EncodedItems":
        """Encode the distinct ids among ``item_ids`` (any shape) with ``encode(unique ids) -> vectors``."""
        unique = torch.unique(item_ids.reshape(-1))
        return cls(unique, encode(unique))

    def lookup(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Any-shaped ids (each must be among ``ids``) -> [..., d]."""
        flat = item_ids.reshape(-1)
        pos = torch.searchsorted(self.ids, flat).clamp_(max=self.ids.numel() - 1)
        # no host sync on GPU: the check runs asynchronously
        torch._assert_async((self.ids[pos] == flat).all(), "an item was looked up that this step did not encode")
        return self.vectors.index_select(0, pos).reshape(*item_ids.shape, self.vectors.shape[-1])


@dataclass(frozen=True)
class TokenLayout:
    """A batch of histories as tokens. ``N = T * tokens_per_item``; the K tokens of interaction t are
    consecutive (in the encoder's kind order), so causal backbones read them in that order and the
    last real token is that of the last interaction's last kind."""

    embeddings: torch.Tensor  # [B, N, d]
    positions: torch.Tensor  # [B, N] long: the interaction index t of each token (shared within an interaction)
    kinds: torch.Tensor  # [B, N] long: which signal a token carries (encoder-defined; 0 with one token per item)
    mask: torch.Tensor  # [B, N] bool: real tokens (False = padding)
    lengths: torch.Tensor  # [B] long: tokens up to and including the last real one
    tokens_per_item: int = 1
    #: [B, N] in [0, 1]: how far each token is part of the input (None = all fully). A token fading
    #: out (the ID during a phase-out) is removed continuously by backbones that can weight tokens.
    presence: Optional[torch.Tensor] = None

    @classmethod
    def interleave(cls, per_kind: Sequence[torch.Tensor], kind_ids: Sequence[int], item_seq: torch.Tensor,
                   item_seq_len: Optional[torch.Tensor],
                   presence: Optional[Sequence[Optional[float]]] = None) -> "TokenLayout":
        """Tokens [B, T, d] per kind -> the layout [B, T*K, d] (``t0k0 t0k1 .. t1k0 ..``).

        ``presence[k]`` (a number, None = 1) weights every token of kind k."""
        k = len(per_kind)
        batch, steps = item_seq.shape
        emb = per_kind[0] if k == 1 else torch.stack(list(per_kind), dim=2).reshape(batch, steps * k, -1)
        real = item_seq != 0
        if item_seq_len is None:  # right-padded: the real items come first
            item_seq_len = real.sum(1)
        positions = torch.arange(steps, device=item_seq.device).repeat_interleave(k).unsqueeze(0).expand(batch, -1)
        kinds = torch.tensor(list(kind_ids), device=item_seq.device).repeat(steps).unsqueeze(0).expand(batch, -1)
        pres = None
        if presence is not None and any(p is not None and p != 1.0 for p in presence):
            row = torch.tensor([1.0 if p is None else float(p) for p in presence], device=item_seq.device, dtype=emb.dtype)
            pres = row.repeat(steps).unsqueeze(0).expand(batch, -1)
        mask = real if k == 1 else real.repeat_interleave(k, dim=1)
        return cls(emb, positions, kinds, mask, item_seq_len * k, k, pres)

    @classmethod
    def one_per_item(cls, embeddings: torch.Tensor, item_seq: torch.Tensor,
                     item_seq_len: Optional[torch.Tensor]) -> "TokenLayout":
        return cls.interleave([embeddings], [0], item_seq, item_seq_len)
