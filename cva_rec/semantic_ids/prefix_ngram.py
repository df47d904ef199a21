"""Prefix n-gram embeddings of semantic codes (FLUID sec. 3.3, Eq. 1-2).

Level l looks up its own table at the composite index of the prefix path,
``cbar_l = sum_{k<=l} c_k N^(l-k)`` (Eq. 1), and the code's vector is the concatenation over
levels (Eq. 2). A dense level-l table would need N^l rows (64^4 = 16.8M), so rows exist only
for what is needed:

* ``mode="remap"``: one row per prefix that occurs in ``observed`` codes (sorted composite
  keys, found with ``searchsorted``). A prefix never seen backs off to its **longest seen
  prefix**, like an n-gram language model backing off to a shorter context: level l's slot
  takes the embedding of the deepest level j < l whose prefix was seen (zeros if none).
* ``mode="hash"``: level l has ``min(N^l, hash_size)`` rows; composite indices are used
  directly when they fit, else hashed (multiplicative hash mod ``hash_size``, collisions
  allowed, no back-off needed).
* ``decoding="level_wise"``: the ablation, each level indexed by its own code only
  (N rows per level, no prefix).

**Trained rows** (``trained``: the codes of the items that occur in training). A row that no
trained code uses would keep its random initialisation forever: with distinct codes every item
has its own deepest row, so an item held out of training (item cold start) would be scored
through noise. Such rows count as unseen: the prefix backs off to its deepest trained prefix
(``unseen="backoff"``) or its slot is zero (``unseen="zero"``, so the item's vector is the sum
of its trained rows' contributions only). Training itself never reads them (every prefix of a
training item is trained), so this changes only items outside training.

Each level is ``level_dim = output_dim // L`` wide; if ``L * level_dim != output_dim`` a
Linear maps the concatenation to ``output_dim``.

``compose="sum"`` instead gives every level a full ``output_dim`` row and *adds* the levels'
rows (no projection): the hierarchical sum of Singh et al.'s n-gram semantic-ID embeddings. With
codes whose last level is distinct, an item's own row is then a full-width free vector that Adam
moves as fast as an item-ID row; behind a projection it moves through a shared matrix with gain
well below 1 (measured on ml-1m: ID-free learns more slowly than the ID model at one budget). Codes < 0 (items without content, padding)
give the zero vector.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from cva_rec.errors import ConfigError

MODES = ("remap", "hash")
DECODINGS = ("prefix", "level_wise")
COMPOSE = ("concat", "sum")  # Eq. 2's concatenation (+ projection), or the sum of full-width level rows
UNSEEN = ("backoff", "zero")  # a prefix without a trained row: deepest trained prefix's vector, or zero
_HASH_MULT = 2654435761  # Knuth's multiplicative constant (2^32 / golden ratio)


def composite_index(codes: torch.Tensor, n_codes: int) -> torch.Tensor:
    """Eq. 1: codes [..., L] -> composite prefix indices [..., L]; cbar_l = sum_{k<=l} c_k N^(l-k)."""
    codes = codes.long()
    out = torch.empty_like(codes)
    acc = torch.zeros_like(codes[..., 0])
    for level in range(codes.shape[-1]):
        acc = acc * n_codes + codes[..., level]
        out[..., level] = acc
    return out


def random_depths(n: int, levels: int, rate: float, device=None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Level dropout: [n] depths, ``levels`` (keep every level) or, with probability ``rate``, uniform
    in 1..levels-1, so an item's code is cut as a held-out item's is (only its shallow prefixes trained)."""
    full = torch.full((n,), levels, dtype=torch.long, device=device)
    if rate <= 0 or levels < 2:
        return full
    cut = torch.rand(n, device=device, generator=generator) < rate
    depth = torch.randint(1, levels, (n,), device=device, generator=generator)
    return torch.where(cut, depth, full)


class PrefixNgramEmbedding(nn.Module):
    def __init__(self, levels: int, n_codes: int, output_dim: int, observed: Optional[torch.Tensor] = None,
                 mode: str = "remap", decoding: str = "prefix", hash_size: int = 1 << 16,
                 level_dim: Optional[int] = None, init_std: float = 0.02, trained: Optional[torch.Tensor] = None,
                 unseen: str = "backoff", compose: str = "concat"):
        super().__init__()
        if compose not in COMPOSE:
            raise ConfigError(f"unknown prefix-embedding compose {compose!r}; known: {', '.join(COMPOSE)}")
        if compose == "sum" and level_dim and int(level_dim) != output_dim:
            raise ConfigError(f"compose 'sum' adds full-width level rows: level_dim must be unset or {output_dim}, got {level_dim}")
        self.compose = compose
        if unseen not in UNSEEN:
            raise ConfigError(f"unknown unseen-prefix rule {unseen!r}; known: {', '.join(UNSEEN)}")
        self.unseen = unseen
        if mode not in MODES:
            raise ConfigError(f"unknown prefix-embedding mode {mode!r}; known: {', '.join(MODES)}")
        if decoding not in DECODINGS:
            raise ConfigError(f"unknown decoding {decoding!r}; known: {', '.join(DECODINGS)}")
        if n_codes ** levels >= 1 << 62:
            raise ConfigError(f"N^L = {n_codes}^{levels} does not fit a 64-bit composite index")
        self.levels, self.n_codes, self.output_dim = int(levels), int(n_codes), int(output_dim)
        self.mode, self.decoding, self.hash_size = mode, decoding, int(hash_size)
        self.level_dim = output_dim if compose == "sum" else int(level_dim) if level_dim else max(1, output_dim // levels)
        self.remapped = decoding == "prefix" and mode == "remap"
        if self.remapped:
            if observed is None:
                raise ConfigError("mode 'remap' needs the observed codes to know which prefixes get rows")
            obs = torch.as_tensor(observed).long().reshape(-1, levels)
            obs = obs[(obs >= 0).all(1)]
            if len(obs) and obs.max() >= n_codes:
                raise ConfigError(f"observed codes must be < N={n_codes}")
            comp = composite_index(obs, n_codes)
            for level in range(levels):  # persistent: the rows of each table are defined by these keys
                self.register_buffer(f"keys_{level}", torch.unique(comp[:, level]))
        rows = [self._rows(level) for level in range(levels)]
        self.tables = nn.ModuleList(nn.Embedding(max(r, 1), self.level_dim) for r in rows)
        for t in self.tables:
            nn.init.normal_(t.weight, std=init_std)
        width = self.level_dim * (1 if compose == "sum" else levels)
        self.proj = nn.Linear(width, output_dim) if width != output_dim else None
        self.masks_trained = False
        if trained is not None:  # data, not weights: rebuilt from the training items, kept out of checkpoints
            for level, mask in enumerate(self._used_rows(trained)):
                self.register_buffer(f"trained_{level}", mask, persistent=False)
            self.masks_trained = True

    def _used_rows(self, codes: torch.Tensor) -> list[torch.Tensor]:
        """Per level, [rows] bool: the rows that some code of ``codes`` [..., L] looks up."""
        codes = torch.as_tensor(codes).long().reshape(-1, self.levels)
        rows, found = self._lookup(codes[(codes >= 0).all(1)])
        used = [torch.zeros(t.num_embeddings, dtype=torch.bool) for t in self.tables]
        for level, mask in enumerate(used):
            mask[rows[found[:, level], level]] = True
        return used

    def _rows(self, level: int) -> int:
        if self.decoding == "level_wise":
            return self.n_codes
        if self.mode == "remap":
            return len(getattr(self, f"keys_{level}"))
        return min(self.n_codes ** (level + 1), self.hash_size)

    def table_rows(self) -> list[int]:
        return [t.num_embeddings for t in self.tables]

    # -- lookups ---------------------------------------------------------------------------
    def rows_for(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """codes [n, L] -> (row per level [n, L], found [n, L] bool). Not-found rows are 0 (unused);
        with ``trained`` masks a row no trained code uses is not found either."""
        rows, found = self._lookup(codes)
        if self.masks_trained:
            for level in range(self.levels):
                found[:, level] &= getattr(self, f"trained_{level}")[rows[:, level]]
        return rows, found

    def _lookup(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = codes.long()
        valid = (codes >= 0).all(-1, keepdim=True).expand_as(codes)
        safe = codes.clamp_min(0)
        if self.decoding == "level_wise":
            return safe, valid.clone()
        comp = composite_index(safe, self.n_codes)
        if self.mode == "hash":
            rows = torch.empty_like(comp)
            for level in range(self.levels):
                size = self.tables[level].num_embeddings
                c = comp[:, level]
                rows[:, level] = c if self.n_codes ** (level + 1) <= size else (c * _HASH_MULT + level) % size
            return rows, valid.clone()
        rows = torch.zeros_like(comp)
        found = torch.zeros_like(valid)
        for level in range(self.levels):
            keys = getattr(self, f"keys_{level}")
            if len(keys) == 0:
                continue
            pos = torch.searchsorted(keys, comp[:, level].contiguous()).clamp_max(len(keys) - 1)
            hit = keys[pos] == comp[:, level]
            rows[:, level] = torch.where(hit, pos, torch.zeros_like(pos))
            found[:, level] = hit & valid[:, level]
        return rows, found

    def level_vectors(self, codes: torch.Tensor, depth: Optional[torch.Tensor] = None) -> torch.Tensor:
        """codes [n, L] -> per-level vectors [n, L, level_dim] (with back-off, zeros for invalid codes).
        ``depth`` [n]: levels >= depth are treated as untrained (level dropout, :func:`random_depths`)."""
        rows, found = self.rows_for(codes)
        if depth is not None:
            found = found & (torch.arange(self.levels, device=codes.device)[None, :] < depth[:, None])
        vecs = torch.stack([self.tables[level](rows[:, level]) for level in range(self.levels)], 1)
        vecs = vecs * found[..., None].to(vecs.dtype)
        if self.decoding == "prefix" and self.unseen == "backoff" and not bool(found.all()):
            # back-off: an unseen level takes the vector of the deepest seen level before it
            valid = (codes >= 0).all(-1)
            out = vecs.clone()
            for level in range(1, self.levels):
                miss = ~found[:, level] & valid
                out[:, level] = torch.where(miss[:, None], out[:, level - 1], out[:, level])
            vecs = out
        return vecs

    def embed_codes(self, codes: torch.Tensor, depth: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Eq. 2: codes [..., L] -> [..., output_dim]; ``depth`` [...]: see :meth:`level_vectors`."""
        if codes.shape[-1] != self.levels:
            raise ConfigError(f"codes must end in {self.levels} levels, got shape {tuple(codes.shape)}")
        flat = codes.reshape(-1, self.levels)
        vecs = self.level_vectors(flat, None if depth is None else depth.reshape(-1))
        out = vecs.sum(1) if self.compose == "sum" else vecs.reshape(len(flat), -1)
        if self.proj is not None:
            out = self.proj(out) * (flat >= 0).all(-1, keepdim=True).to(out.dtype)
        return out.reshape(*codes.shape[:-1], self.output_dim)

    forward = embed_codes

    # -- warm start (FLUID stage 3: room tables from the warm slice tables) --------------------
    @torch.no_grad()
    def init_from(self, other: "PrefixNgramEmbedding") -> "PrefixNgramEmbedding":
        """Copy ``other``'s tables. Remapped tables are copied *by prefix*: each of this module's
        prefixes takes ``other``'s vector for the same prefix (backing off when ``other`` never saw it)."""
        if (other.levels, other.n_codes, other.level_dim, other.decoding, other.mode, other.compose) != (
                self.levels, self.n_codes, self.level_dim, self.decoding, self.mode, self.compose):
            raise ConfigError("init_from needs the same levels, codes, level_dim, decoding, mode and compose")
        if self.remapped:
            for level in range(self.levels):
                keys = getattr(self, f"keys_{level}")
                # rebuild full codes for this level's prefixes: digits of the composite key
                prefix = torch.zeros(len(keys), self.levels, dtype=torch.long, device=keys.device)
                rest = keys.clone()
                for k in range(level, -1, -1):
                    prefix[:, k] = rest % self.n_codes
                    rest = rest // self.n_codes
                # levels below this one: take other's vectors for the prefix truncated at `level`
                vecs = other._prefix_vector(prefix[:, : level + 1])
                self.tables[level].weight.copy_(vecs)
        else:
            for mine, theirs in zip(self.tables, other.tables):
                if mine.weight.shape != theirs.weight.shape:
                    raise ConfigError("init_from: table sizes differ (hash sizes must match)")
                mine.weight.copy_(theirs.weight)
        if self.proj is not None and other.proj is not None:
            self.proj.load_state_dict(other.proj.state_dict())
        return self

    def _prefix_vector(self, prefix: torch.Tensor) -> torch.Tensor:
        """Vector at level len(prefix) for prefixes [n, l] (with back-off), for init_from."""
        level = prefix.shape[1] - 1
        padded = torch.cat([prefix, torch.zeros(len(prefix), self.levels - level - 1, dtype=torch.long,
                                                device=prefix.device)], 1)
        return self.level_vectors(padded)[:, level]

    def extra_repr(self) -> str:
        return (f"levels={self.levels}, n_codes={self.n_codes}, decoding={self.decoding}, mode={self.mode}, "
                f"rows={self.table_rows()}, level_dim={self.level_dim}, compose={self.compose}")
