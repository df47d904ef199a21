"""``semantic_id``: LUCID prefix n-gram embeddings of an item's semantic code (no content at train time).

The codes come from ``cva-rec tokenize`` (a ``SemanticCodes`` file, ``codes_path``) or are
passed as a ``SemanticCodes`` object (``codes``); either way they must be aligned to the
dataset's internal item ids (``SemanticCodes.align(dataset.field2id_token[iid_field])``)
unless they already have ``n_items`` rows in that order.

* ``which="room"``: the item-level (majority-vote) code; ``encode`` is a pure lookup.
* ``which="slice"``: the code of one segment, chosen by ``slice_rule_train`` in training and
  ``slice_rule_eval`` in evaluation. In a history (:meth:`history`) every occurrence of an item
  draws its own segment; a candidate (``encode``) draws one per distinct item and step.

Tables are built for the prefixes present in the codes of this ``which`` (``mode="remap"``) or
hashed (``mode="hash"``); ``decoding="level_wise"`` is the ablation. With ``prefix_rows="trained"``
(default) and ``trained_items`` (the framework passes the items that occur in training, from the
training split only) a row that no training item's code uses is treated as unseen: such an item (a
held-out cold item) backs off to its deepest trained prefix (``unseen_prefix="backoff"``) or leaves
that level out (``"zero"``) instead of reading a never-trained random row. For FLUID stage 3 the
room encoder's tables start from the warm slice encoder's: ``room.init_from(slice)``.
"""
from __future__ import annotations

from typing import Optional

import torch

from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.layers import check_choice
from cva_rec.encoders.registry import register_encoder
from cva_rec.encoders.tokens import EncodedItems, TokenLayout
from cva_rec.errors import ConfigError
from cva_rec.features.content import ItemContent
from cva_rec.semantic_ids.codes import SemanticCodes, SliceRule
from cva_rec.semantic_ids.prefix_ngram import PrefixNgramEmbedding

PREFIX_ROWS = ("trained", "all")  # which table rows an item may read: those some training item uses, or every coded item's


@register_encoder("semantic_id")
class SemanticIdEncoder(ItemEncoder):
    needs_content = False

    def __init__(self, n_items: int, output_dim: int, content: Optional[ItemContent] = None,
                 codes_path: Optional[str] = None, which: str = "room", mode: str = "remap",
                 decoding: str = "prefix", hash_size: int = 1 << 16, level_dim: Optional[int] = None, compose: str = "concat",
                 slice_rule_train: str = "random", slice_rule_eval: str = "first",
                 prefix_rows: str = "trained", unseen_prefix: str = "backoff",
                 codes: Optional[SemanticCodes] = None, item_tokens=None, trained_items: Optional[torch.Tensor] = None):
        super().__init__(n_items, output_dim, content)
        if which not in ("room", "slice"):
            raise ConfigError(f"semantic_id: which must be 'room' or 'slice', got {which!r}")
        if (codes is None) == (codes_path is None):
            raise ConfigError("semantic_id needs exactly one of codes_path (a file from `cva-rec tokenize`) or codes")
        codes = SemanticCodes.for_items(codes, codes_path, item_tokens, n_items)
        self.which = which
        self.rule = SliceRule(slice_rule_train, slice_rule_eval)
        # codes are data, not weights: kept out of checkpoints (persistent=False)
        self.register_buffer("slice_table", codes.slice_codes.clone(), persistent=False)
        self.register_buffer("slice_counts", codes.num_segments.clone(), persistent=False)
        self.register_buffer("room_table", codes.room_codes.clone(), persistent=False)
        check_choice("semantic_id prefix_rows", prefix_rows, PREFIX_ROWS)
        observed = self._codes_of(codes, which)
        trained = None
        if prefix_rows == "trained" and trained_items is not None:
            keep = torch.as_tensor(trained_items, dtype=torch.bool)
            if keep.shape != (n_items,):
                raise ConfigError(f"semantic_id: trained_items must be [n_items={n_items}] bool, got {tuple(keep.shape)}")
            trained = self._codes_of(codes, which, keep)
        self.embedding = PrefixNgramEmbedding(codes.levels, codes.n_codes, output_dim, observed=observed, mode=mode,
                                              decoding=decoding, hash_size=hash_size, level_dim=level_dim, compose=compose,
                                              trained=trained, unseen=unseen_prefix)

    @staticmethod
    def _codes_of(codes: SemanticCodes, which: str, items: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The room codes [n, L], or every valid slice code [m, L], of ``items`` (bool [n_items]; all by default)."""
        rows = slice(None) if items is None else items
        if which == "room":
            return codes.room_codes[rows]
        return codes.slice_codes[rows][codes.slice_mask[rows]]

    def slice_codes(self, item_ids: torch.Tensor, training: bool, segment: Optional[torch.Tensor] = None,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Slice codes [..., L] an interaction carries: the data's ``segment`` when given, else the rule."""
        counts = self.slice_counts[item_ids]
        if segment is None:
            seg = self.rule.segment(counts, training, generator)
        else:
            seg = torch.minimum(segment.long().clamp_min(0), (counts - 1).clamp_min(0))
        return self.slice_table[item_ids, seg]

    def item_codes(self, item_ids: torch.Tensor) -> torch.Tensor:
        """The code ``encode`` embeds: room code, or a slice by the rule of the current mode."""
        if self.which == "room":
            return self.room_table[item_ids]
        return self.slice_codes(item_ids, training=self.training)

    def embed_codes(self, codes: torch.Tensor, depth: Optional[torch.Tensor] = None) -> torch.Tensor:
        """codes [..., L] -> [..., output_dim] (for per-interaction slice tokens); ``depth``: level dropout."""
        return self.embedding.embed_codes(codes, depth)

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.embed_codes(self.item_codes(item_ids))

    def history(self, item_seq: torch.Tensor, item_seq_len: Optional[torch.Tensor] = None,
                items: Optional[EncodedItems] = None) -> TokenLayout:
        """One token per interaction; a slice is drawn for every occurrence (``items`` is not used)."""
        if self.which == "room":
            return super().history(item_seq, item_seq_len, items)
        vectors = self.encode(item_seq.reshape(-1)).reshape(*item_seq.shape, self.output_dim)
        return TokenLayout.one_per_item(vectors.masked_fill((item_seq == 0).unsqueeze(-1), 0.0), item_seq, item_seq_len)

    def init_from(self, other: "SemanticIdEncoder") -> "SemanticIdEncoder":
        """Copy ``other``'s tables by prefix (FLUID stage 3: room tables from warm slice tables)."""
        other_emb = other.embedding if isinstance(other, SemanticIdEncoder) else other
        self.embedding.init_from(other_emb)
        self.invalidate_cache()
        return self

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, which={self.which}"
