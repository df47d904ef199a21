"""``lucid``: the item ID, slice-level and room-level LUCID codes, fused early or late (FLUID sec. 3.4).

Three *kinds* of item-side signal, any subset chosen by ``tokens``:

* ``id``: the item-ID table g (named ``table`` like the ``id`` encoder, so a converged ID
  checkpoint loads into it by name: staged warmup stage 1);
* ``slice``: the prefix n-gram embedding s of the slice code the interaction carries
  (a random segment in training, a fixed one in evaluation: ``slice_rule_*``);
* ``room``: the prefix n-gram embedding r of the item's room code (majority vote).

``fusion="early"`` maps them to one vector per item (Eqs. 3-6): with c = s + r (the content
tokens present), ``early="replace"`` h = c (no ID table at all), ``"sum"`` h = g + c,
``"concat"`` h = W[g || c], ``"gate"`` h = a g + (1 - a) c with a = sigmoid(f(u)), u the ID
embedding itself (``gate_input="id"``, LARM learnable) or its norm (``"norm"``, side information).

``fusion="late"`` (Eq. 7-8) keeps every kind its own token: an interaction at history position t
becomes K consecutive tokens (one per kind, in the order id, slice, room) that share position t
and carry a learned kind embedding, so the backbone's attention / recurrence learns how they
interact. The backbone sees "virtual" ids ``(kind + 1) * n_items + item`` for these tokens
(``input_ids``); ids below ``n_items`` are candidates. **Candidate side**: a dot-product
ranker scores a candidate by one vector, so a candidate is the *sum of its token vectors*,
i.e. score = sum_k <q, e_k>: each token contributes its own dot product with the user state.

``id_scale`` (0..1) multiplies the ID signal everywhere: the staged warmup's phase-out schedule
lowers it; at 0 the ID tokens leave the input (K drops by one), so the model is then exactly the
ID-free model, and :meth:`drop_id` deletes the table from the module (and its checkpoints). Early
``concat`` / ``gate`` without an ID keep their content half as ``content_proj`` (the same function).
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch
from torch import nn

from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.layers import check_choice
from cva_rec.encoders.registry import register_encoder
from cva_rec.encoders.semantic_id import SemanticIdEncoder
from cva_rec.errors import ConfigError
from cva_rec.features.content import ItemContent
from cva_rec.semantic_ids.codes import SemanticCodes

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
                 decoding: str = "prefix", hash_size: int = 1 << 16, slice_rule_train: str = "random",
                 slice_rule_eval: str = "first", id_scale: float = 1.0,
                 codes: Optional[SemanticCodes] = None, item_tokens: Optional[Sequence[str]] = None):
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
        self.register_buffer("id_scale", torch.tensor(float(id_scale)), persistent=False)

        if "id" in self.kinds:
            self.table = nn.Embedding(n_items, output_dim, padding_idx=0)
            nn.init.normal_(self.table.weight, std=0.02)  # RecBole's initialisation of its item table
        if content_kinds:
            codes = self._load_codes(codes, codes_path, item_tokens, n_items)
            common = dict(codes=codes, mode=mode, decoding=decoding, hash_size=hash_size,
                          slice_rule_train=slice_rule_train, slice_rule_eval=slice_rule_eval)
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
        return "id" in self.kinds

    def active_kinds(self) -> list[str]:
        """Kinds that enter the input; an ID scaled to exactly 0 has left the model's function."""
        return [k for k in self.kinds if k != "id" or float(self.id_scale) > 0.0]

    @property
    def tokens_per_item(self) -> int:
        return len(self.active_kinds()) if self.fusion == "late" else 1

    def set_id_scale(self, value: float) -> None:
        self.id_scale.fill_(float(value))
        self.invalidate_cache()

    @torch.no_grad()
    def drop_id(self) -> None:
        """Retire the item ID: delete the table (and the early-fusion layers that read it)."""
        if not self.has_id:
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

    def _weights_version(self):
        return super()._weights_version() + (float(self.id_scale), tuple(self.kinds))

    # -- vectors ----------------------------------------------------------------------------
    def kind_vectors(self, kind: str, items: torch.Tensor) -> torch.Tensor:
        if kind == "id":
            return self.table(items) * self.id_scale
        if kind == "slice":
            return self.slice_enc.embed_codes(self.slice_enc.slice_codes(items, training=self.training))
        return self.room_enc.encode(items)

    def candidate_vectors(self, items: torch.Tensor) -> torch.Tensor:
        content = [self.kind_vectors(k, items) for k in self.kinds if k != "id"]
        c = torch.stack(content).sum(0) if content else None
        if self.fusion == "late" or not self.has_id:
            parts = ([self.kind_vectors("id", items)] if self.has_id else []) + ([c] if c is not None else [])
            out = torch.stack(parts).sum(0)
            return self.content_proj(out) if hasattr(self, "content_proj") else out
        g = self.kind_vectors("id", items)
        if self.early == "sum":
            return g + c
        if self.early == "concat":
            return self.fuse(torch.cat([g, c], -1))
        u = g if self.gate_input == "id" else g.norm(dim=-1, keepdim=True)
        alpha = torch.sigmoid(self.gate(u))
        return alpha * g + (1 - alpha) * c

    def gate_values(self, items: torch.Tensor) -> Optional[torch.Tensor]:
        """a = sigmoid(f(u)) per item (early gate fusion only): how much weight the ID gets."""
        if self.fusion != "early" or self.early != "gate" or not self.has_id:
            return None
        g = self.kind_vectors("id", items)
        return torch.sigmoid(self.gate(g if self.gate_input == "id" else g.norm(dim=-1, keepdim=True))).squeeze(-1)

    def encode(self, item_ids: torch.Tensor) -> torch.Tensor:
        out = torch.empty(len(item_ids), self.output_dim, device=item_ids.device)
        cand = item_ids < self.n_items
        if cand.any():
            out[cand] = self.candidate_vectors(item_ids[cand]).to(out.dtype)
        if (~cand).any():
            virt = item_ids[~cand]
            kind_idx, items = virt // self.n_items - 1, virt % self.n_items
            vecs = torch.zeros(len(virt), self.output_dim, device=item_ids.device)
            for k, kind in enumerate(KINDS):
                sel = kind_idx == k
                if sel.any():
                    vecs[sel] = (self.kind_vectors(kind, items[sel]) + self.kind_embedding.weight[k]).to(vecs.dtype)
            out[~cand] = vecs
        return out

    def input_ids(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Ids the backbone reads for a history [B, T]: itself (early) or [B, T*K] token ids (late)."""
        if self.fusion == "early":
            return item_seq
        kinds = self.active_kinds()
        virt = torch.stack([(KINDS.index(k) + 1) * self.n_items + item_seq for k in kinds], -1)
        virt = torch.where(item_seq[..., None] > 0, virt, torch.zeros_like(virt))
        return virt.reshape(*item_seq.shape[:-1], item_seq.shape[-1] * len(kinds))

    def extra_repr(self) -> str:
        extra = f", early={self.early}" if self.fusion == "early" else ""
        return f"{super().extra_repr()}, tokens={self.kinds}, fusion={self.fusion}{extra}, shared_tables={self.shared_tables}"
