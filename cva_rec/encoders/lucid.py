"""``lucid``: the item ID, slice-level and room-level LUCID codes, fused early or late (FLUID sec. 3.4).

Three *kinds* of item-side signal, any subset chosen by ``tokens``:

* ``id``: the item-ID table g (named ``table`` like the ``id`` encoder, so a converged ID
  checkpoint loads into it by name: staged warmup stage 1);
* ``slice``: the prefix n-gram embedding s of the slice code an interaction carries
  (``slice_rule_train``, drawn afresh for every occurrence of an item in a history; a fixed
  segment in evaluation: ``slice_rule_eval``);
* ``room``: the prefix n-gram embedding r of the item's room code (majority vote).

Slice and room tables read only rows that some training item uses (``prefix_rows="trained"``,
see :mod:`cva_rec.encoders.semantic_id`): an item outside training backs off to its trained prefixes.
``level_dropout=p`` (training only) cuts a candidate's slice / room codes at a random depth with
probability p, so the model also learns to rank items by their shallow prefixes, which is all a
held-out item has (DropoutNet's idea applied to code levels); histories are not cut.

``fusion="early"`` maps them to one vector per interaction (Eqs. 3-6): with c = s + r (the content
tokens present), ``early="replace"`` h = c (no ID table at all), ``"sum"`` h = g + c,
``"concat"`` h = W[g || c], ``"gate"`` h = a g + (1 - a) c with a = sigmoid(f(u)), u the ID
embedding itself (``gate_input="id"``, LARM learnable) or its norm (``"norm"``, side information).

``fusion="late"`` (Eq. 7-8) keeps every kind its own token in the history's :class:`TokenLayout`:
interaction t becomes K consecutive tokens (one per kind, in the order id, slice, room) that share
position t and carry a learned kind embedding. **Candidate side**: a dot-product ranker scores a
candidate by one vector, so a candidate is the *sum of its kind vectors*: score = sum_k <q, e_k>.

**Retiring the ID** (the staged warm-up's protocol, :mod:`cva_rec.encoders.id_retirement`):
``set_id_scale(s, where)`` weights g by s on the candidate side (``where="candidate"``, FLUID's
Eq. 8: the candidate-side ID is retired, histories keep their ID tokens) or on both sides
(``"everywhere"``); in a late-fusion history the ID token is then also *present* with weight s
(``TokenLayout.presence``), which the backbones apply (SASRec to its attention weight, GRU4Rec /
NARM to its recurrent step, STAMP to its memory share; not NextItNet), so scores move continuously
to those of the ID-free model as s -> 0. ``drop_id(where)`` ends it: ``candidate``
sets ``candidate_id`` off (g leaves the candidate vector; the table stays for the histories),
``everywhere`` deletes the table. Early ``concat`` / ``gate`` without any ID keep their content half
as ``content_proj`` (the same function).

**The staged warm-up** (:mod:`cva_rec.encoders.staged_warmup`) reaches lucid through two more members:
``stage_options`` turns a stage's kinds into this encoder's options, and ``warm_start("room", "slice")``
starts the room tables from the warm slice tables (FLUID stage 3).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional, Sequence

import torch
from torch import nn

from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.id_retirement import RETIRE_WHERE
from cva_rec.encoders.layers import check_choice
from cva_rec.encoders.registry import register_encoder
from cva_rec.encoders.semantic_id import SemanticIdEncoder
from cva_rec.encoders.tokens import EncodedItems, TokenLayout
from cva_rec.errors import ConfigError
from cva_rec.features.content import ItemContent
from cva_rec.semantic_ids.codes import SemanticCodes
from cva_rec.semantic_ids.prefix_ngram import random_depths

log = logging.getLogger("cva_rec")

KINDS = ("id", "slice", "room")
EARLY_MODES = ("replace", "sum", "concat", "gate")
GATE_INPUTS = ("id", "norm")


@register_encoder("lucid")
class LucidEncoder(ItemEncoder):
    needs_content = False

    def __init__(self, n_items: int, output_dim: int, content: Optional[ItemContent] = None,
                 codes_path: Optional[str] = None, tokens: Sequence[str] = ("id", "slice"), fusion: str = "late",
                 early: str = "concat", gate_input: str = "id", shared_tables: bool = False, mode: str = "remap",
                 decoding: str = "prefix", hash_size: int = 1 << 16, level_dim: Optional[int] = None, compose: str = "concat",
                 slice_rule_train: str = "random",
                 slice_rule_eval: str = "first", prefix_rows: str = "trained", unseen_prefix: str = "backoff",
                 level_dropout: float = 0.0, id_scale: float = 1.0, candidate_id: bool = True, codes: Optional[SemanticCodes] = None,
                 id_rows: str = "all", item_tokens: Optional[Sequence[str]] = None,
                 trained_items: Optional[torch.Tensor] = None):
        super().__init__(n_items, output_dim, None)
        tokens = [str(t) for t in ([tokens] if isinstance(tokens, str) else tokens)]
        for t in tokens:
            check_choice("lucid tokens", t, KINDS)
        if not tokens or len(set(tokens)) != len(tokens):
            raise ConfigError(f"lucid tokens must be a non-empty list of distinct kinds from {KINDS}, got {tokens}")
        self.fusion = check_choice("lucid fusion", fusion, ("early", "late"))
        self.early = check_choice("lucid early", early, EARLY_MODES)
        self.gate_input = check_choice("lucid gate_input", gate_input, GATE_INPUTS)
        content_kinds = [t for t in tokens if t != "id"]
        if self.fusion == "early":
            if self.early == "replace" and "id" in tokens:
                raise ConfigError("lucid early='replace' uses no item ID: drop 'id' from tokens")
            if self.early != "replace" and not content_kinds:
                raise ConfigError(f"lucid early={self.early!r} fuses the ID with slice/room codes: tokens needs slice and/or room")
        self.kinds = [k for k in KINDS if k in tokens]  # canonical order: id, slice, room
        if not 0.0 <= float(level_dropout) < 1.0:
            raise ConfigError(f"lucid level_dropout must be in [0, 1), got {level_dropout}")
        self.level_dropout = float(level_dropout)
        # weight of g in the histories and in the candidates (the phase-out lowers them)
        self.register_buffer("id_scale", torch.tensor(float(id_scale)), persistent=False)
        self.register_buffer("candidate_id_scale", torch.tensor(float(id_scale)), persistent=False)
        self.candidate_id = bool(candidate_id) and "id" in self.kinds

        if "id" in self.kinds:
            self.table = nn.Embedding(n_items, output_dim, padding_idx=0)
            nn.init.normal_(self.table.weight, std=0.02)  # RecBole's initialisation of its item table
            if check_choice("lucid id_rows", id_rows, ("all", "trained")) == "trained" and trained_items is not None:
                # an item outside training gets a zero ID vector, not its random init (its row gets no gradient:
                # training is the same either way)
                keep = torch.as_tensor(trained_items, dtype=torch.bool)
                if keep.shape != (n_items,):
                    raise ConfigError(f"lucid: trained_items must be [n_items={n_items}] bool, got {tuple(keep.shape)}")
                self.register_buffer("id_row_keep", keep.to(torch.float32).unsqueeze(-1), persistent=False)
        if content_kinds:
            codes = self._load_codes(codes, codes_path, item_tokens, n_items)
            common = dict(codes=codes, mode=mode, decoding=decoding, hash_size=hash_size, level_dim=level_dim, compose=compose,
                          slice_rule_train=slice_rule_train, slice_rule_eval=slice_rule_eval,
                          prefix_rows=prefix_rows, unseen_prefix=unseen_prefix, trained_items=trained_items)
            if "slice" in self.kinds:
                self.slice_enc = SemanticIdEncoder(n_items, output_dim, which="slice", **common)
            if "room" in self.kinds:
                self.room_enc = SemanticIdEncoder(n_items, output_dim, which="room", **common)
                if shared_tables and "slice" in self.kinds:
                    # ablation: one set of prefix tables for both granularities
                    self.room_enc.embedding = self.slice_enc.embedding
        self.shared_tables = bool(shared_tables)
        if self.fusion == "late":
            # zero-initialised so that adding a kind to a warm model starts from the warm model's function
            self.kind_embedding = nn.Embedding(len(KINDS), output_dim)
            nn.init.zeros_(self.kind_embedding.weight)
        elif self.early in ("concat", "gate") and not self.has_id:
            # the ID-retired form of these fusions (see drop_id), so a phase-out seed loads into it
            self.content_proj = nn.Linear(output_dim, output_dim, bias=self.early == "concat")
        elif self.early == "concat":
            self.fuse = nn.Linear(2 * output_dim, output_dim)
        elif self.early == "gate":
            self.gate = nn.Linear(output_dim if self.gate_input == "id" else 1, 1)

    @staticmethod
    def _load_codes(codes, codes_path, item_tokens, n_items) -> SemanticCodes:
        if (codes is None) == (codes_path is None):
            raise ConfigError("lucid needs item_encoder.codes_path (codes.npz from `cva-rec tokenize`) for slice/room tokens")
        codes = SemanticCodes.for_items(codes, codes_path, item_tokens, n_items)
        uncoded = int((codes.room_codes[1:] < 0).any(1).sum())
        if uncoded:
            log.warning("lucid: %d of %d items have no semantic code (no content): their slice/room vectors are zero",
                        uncoded, n_items - 1)
        return codes

    # -- which tokens are live ------------------------------------------------------------
    @property
    def has_id(self) -> bool:
        """The ID table exists (in the histories at least)."""
        return "id" in self.kinds

    def history_kinds(self) -> list[str]:
        """Kinds that are tokens of a late-fusion history; an ID at weight exactly 0 is absent."""
        return [k for k in self.kinds if k != "id" or float(self.id_scale) > 0.0]

    @property
    def tokens_per_item(self) -> int:
        return len(self.history_kinds()) if self.fusion == "late" else 1

    # -- the ID-retirement protocol (cva_rec.encoders.id_retirement) -------------------------
    def id_parameter_names(self) -> list[str]:
        return ["table.weight"]  # also without the table: the name a seed's ID table has

    def set_id_scale(self, value: float, where: str = "everywhere") -> None:
        check_choice("retire", where, RETIRE_WHERE)
        self.candidate_id_scale.fill_(float(value))
        if where == "everywhere":
            self.id_scale.fill_(float(value))
        self.invalidate_cache()

    @torch.no_grad()
    def drop_id(self, where: str = "everywhere") -> None:
        """Retire the item ID: from the candidate vector, or delete the table (and fold the early layers)."""
        check_choice("retire", where, RETIRE_WHERE)
        self.candidate_id = False
        if where == "candidate" or not self.has_id:
            self.invalidate_cache()
            return
        del self.table
        self.kinds = [k for k in self.kinds if k != "id"]
        if self.fusion == "early" and self.early in ("concat", "gate"):
            # keep the function the model had at id_scale = 0: concat W[0 || c] + b and gate
            # (1 - sigmoid(f(0))) c are linear in c, so fold them into one content-only layer
            d = self.output_dim
            self.content_proj = nn.Linear(d, d, bias=self.early == "concat").to(self._device())
            if self.early == "concat":
                self.content_proj.weight.copy_(self.fuse.weight[:, d:])
                self.content_proj.bias.copy_(self.fuse.bias)
                del self.fuse
            else:
                zero = torch.zeros(1, d if self.gate_input == "id" else 1, device=self._device())
                keep = 1.0 - torch.sigmoid(self.gate(zero)).item()
                self.content_proj.weight.copy_(torch.eye(d) * keep)
                del self.gate
        self.invalidate_cache()

    # -- the staged warm-up's protocol (cva_rec.encoders.staged_warmup) -----------------------
    @classmethod
    def stage_options(cls, options: Mapping[str, Any], tokens: Sequence[str], history_id: bool) -> Dict[str, Any]:
        """The recipe's lucid options with the stage's kinds as ``tokens``: early ``replace`` puts the codes
        where the ID was (no ID token); ``history_id`` (FLUID Eq. 8, after a candidate-side phase-out) keeps
        the histories' ID token while the candidates leave it out; ``shared_tables`` is left out of a stage
        without the room token (an ablation of it shares the stages before the room)."""
        tokens, options = list(tokens), dict(options)
        if options.get("fusion") == "early" and options.get("early") == "replace":
            tokens = [t for t in tokens if t != "id"]
        elif history_id and "id" not in tokens:
            tokens, options["candidate_id"] = ["id", *tokens], False
        if "room" not in tokens:
            options.pop("shared_tables", None)  # only the room token reads it: a stage before it is the same stage
        return {**options, "tokens": tokens}

    def warm_start(self, kind: str, source: str) -> None:
        """Start the ``kind`` tables from the warm ``source`` tables; lucid knows room from slice."""
        if (kind, source) != ("room", "slice"):
            raise ConfigError(f"lucid starts room tables from slice tables only, not {kind} from {source}")
        self.init_room_from_slice()

    def init_room_from_slice(self) -> None:
        """FLUID stage 3: the room tables start from the warm slice tables, by prefix (not when shared)."""
        if "room" in self.kinds and "slice" in self.kinds and not self.shared_tables:
            self.room_enc.init_from(self.slice_enc)
        self.invalidate_cache()

    def _weights_version(self):
        return super()._weights_version() + (float(self.id_scale), float(self.candidate_id_scale),
                                             self.candidate_id, tuple(self.kinds))

    # -- vectors ----------------------------------------------------------------------------
    def kind_vectors(self, kind: str, items: torch.Tensor, depth: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The unscaled vector of one kind for each entry of ``items`` (any shape); a slice is drawn
        per entry by the rule of the current mode (so per occurrence in a history). ``depth``: level dropout."""
        if kind == "id":
            g = self.table(items)
            return g * self.id_row_keep[items] if hasattr(self, "id_row_keep") else g
        if kind == "slice":
            return self.slice_enc.embed_codes(self.slice_enc.slice_codes(items, training=self.training), depth)
        return self.room_enc.embed_codes(self.room_enc.item_codes(items), depth)

    def _content(self, items: torch.Tensor, candidate: bool = False) -> Optional[torch.Tensor]:
        depth = None
        if candidate and self.training and self.level_dropout > 0:
            # a held-out item is scored through its shallow (trained) prefixes only: train candidates that way too
            levels = (self.slice_enc if "slice" in self.kinds else self.room_enc).embedding.levels
            depth = random_depths(items.numel(), levels, self.level_dropout, items.device).reshape(items.shape)
        content = [self.kind_vectors(k, items, depth) for k in self.kinds if k != "id"]
        return torch.stack(content).sum(0) if content else None

    def _fuse(self, g: Optional[torch.Tensor], c: Optional[torch.Tensor]) -> torch.Tensor:
        """One vector from the (scaled) ID vector g and the content c; g None = no ID on this side."""
        if self.fusion == "late" or not self.has_id:
            out = torch.stack([v for v in (g, c) if v is not None]).sum(0)
            return self.content_proj(out) if hasattr(self, "content_proj") else out
        if g is None:
            g = torch.zeros_like(c)  # the candidate-side ID retired: the function at scale 0
        if self.early == "sum":
            return g + c
        if self.early == "concat":
            return self.fuse(torch.cat([g, c], -1))
        u = g if self.gate_input == "id" else g.norm(dim=-1, keepdim=True)
        alpha = torch.sigmoid(self.gate(u))
        return alpha * g + (1 - alpha) * c

    def candidate_vectors(self, items: torch.Tensor) -> torch.Tensor:
        g = self.kind_vectors("id", items) * self.candidate_id_scale if self.candidate_id else None
        return self._fuse(g, self._content(items, candidate=True))

    def gate_values(self, items: torch.Tensor) -> Optional[torch.Tensor]:
        """a = sigmoid(f(u)) per item (early gate fusion only): how much weight the ID gets."""
        if self.fusion != "early" or self.early != "gate" or not self.has_id:
            return None
        g = self.kind_vectors("id", items)
        return torch.sigmoid(self.gate(g if self.gate_input == "id" else g.norm(dim=-1, keepdim=True))).squeeze(-1)

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.candidate_vectors(item_ids)

    def history(self, item_seq: torch.Tensor, item_seq_len: Optional[torch.Tensor] = None,
                items: Optional[EncodedItems] = None) -> TokenLayout:
        """Every occurrence is encoded on its own (its own slice draw): ``items`` is not used."""
        pad = (item_seq == 0).unsqueeze(-1)
        if self.fusion == "early":
            g = self.kind_vectors("id", item_seq) * self.id_scale if self.has_id else None
            h = self._fuse(g, self._content(item_seq)).masked_fill(pad, 0.0)
            return TokenLayout.one_per_item(h, item_seq, item_seq_len)
        kinds = self.history_kinds()
        per_kind = []
        for kind in kinds:
            v = self.kind_vectors(kind, item_seq)
            if kind == "id":
                v = v * self.id_scale
            per_kind.append((v + self.kind_embedding.weight[KINDS.index(kind)]).masked_fill(pad, 0.0))
        presence = [float(self.id_scale) if k == "id" else None for k in kinds]
        return TokenLayout.interleave(per_kind, [KINDS.index(k) for k in kinds], item_seq, item_seq_len, presence)

    def extra_repr(self) -> str:
        extra = f", early={self.early}" if self.fusion == "early" else ""
        return (f"{super().extra_repr()}, tokens={self.kinds}, candidate_id={self.candidate_id}, fusion={self.fusion}{extra}, "
                f"shared_tables={self.shared_tables}")
