"""The multi-view tokenizer (GRDR sec. 3.2): N_v learned projections of an item's content embedding,
residual quantisation of every view over one shared codebook, and a reconstruction decoder.

* **Views**: ``z_v = phi_v(f)``, ``v = 1..N_v`` (Eq. 3), a small MLP per view, each initialised
  differently, so one item gets ``N_v`` code paths.
* **Shared residual codebook** (``SharedCodebook``): ``L`` levels of ``K`` vectors; at level ``m``
  the code is the entry with the largest *cosine* to the residual (Eq. 4, 5). The same
  parameters are the generative retriever's output vocabulary (Eq. 8), which is what couples
  the two models (sec. 3.3).
* **Losses**: ``L_RQ`` codebook + beta * commitment (Eq. 6); ``L_Rec = 1 - cos(f, mean_v psi_v(z_hat_v))``
  (Eq. 7, straight-through through the quantiser); ``L_div``, the mean squared cosine between two
  views of one item (0 when they are orthogonal): an explicit term against view collapse, next to
  the query-guided assignment of ``L_CL`` (``cotrain.py``); and the tokenizer half of ``L_HC``
  (Eq. 10): the log-probability of the item's own earlier codes under a softmax over cosines.
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class SharedCodebook(nn.Module):
    """``L`` codebooks of ``K`` x ``dim``; code selection and code probabilities by cosine."""

    def __init__(self, levels: int, codes: int, dim: int, tau: float = 0.07):
        super().__init__()
        self.levels, self.codes, self.dim = levels, codes, dim
        self.books = nn.ParameterList([nn.Parameter(torch.randn(codes, dim) / math.sqrt(dim)) for _ in range(levels)])
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau)))  # learnable temperature (Eq. 8, 9)

    @property
    def tau(self) -> torch.Tensor:
        return self.log_tau.exp().clamp(0.01, 1.0)

    def cosine_logits(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """[..., dim] -> [..., K]: cos(x, C_level) / tau."""
        return F.normalize(x, dim=-1) @ F.normalize(self.books[level], dim=-1).T / self.tau

    def cosine_scorer(self):
        """``cosine_logits`` as a function ``(x, level) -> [..., K]`` for decoding without gradients: the
        normalised codebooks and the temperature are computed once and reused until a parameter changes
        (the same values)."""
        versions = tuple((p._version, p.data_ptr()) for p in (*self.books, self.log_tau))
        if getattr(self, "_scorer_key", None) != versions:
            with torch.no_grad():
                self._scorer_books = [F.normalize(book, dim=-1).T for book in self.books]
                self._scorer_tau = self.tau
            self._scorer_key = versions
        books, tau = self._scorer_books, self._scorer_tau

        def score(x: torch.Tensor, level: int) -> torch.Tensor:  # F.normalize's arithmetic without its Python
            return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12) @ books[level] / tau

        return score

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """``embed`` for inference ([N, l] codes -> [N, dim]): the same sums, one table lookup per level."""
        if codes.shape[-1] == 0:
            return torch.zeros(*codes.shape[:-1], self.dim, device=self.books[0].device)
        out = F.embedding(codes[..., 0], self.books[0])
        for level in range(1, codes.shape[-1]):
            out = out + F.embedding(codes[..., level], self.books[level])
        return out

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [..., l] (levels 0..l-1) -> the sum of their codebook vectors [..., dim]."""
        out = torch.zeros(*codes.shape[:-1], self.dim, device=self.books[0].device)
        for level in range(codes.shape[-1]):
            out = out + self.books[level][codes[..., level]]
        return out

    def freeze_below(self, level: int) -> None:
        """Progressive training (Algorithm 1, line 2): levels < ``level`` stop learning."""
        for i, book in enumerate(self.books):
            book.requires_grad_(i >= level)


class Quantised(NamedTuple):
    codes: torch.Tensor  # [..., levels] int64
    z_hat: torch.Tensor  # [..., dim] sum of the chosen codebook vectors
    residuals: List[torch.Tensor]  # residual entering each level, [..., dim] each


class MultiViewTokenizer(nn.Module):
    def __init__(self, in_dim: int, codebook: SharedCodebook, views: int = 4, hidden: int = 256, beta: float = 0.25):
        super().__init__()
        self.views, self.beta = views, beta
        dim = codebook.dim
        self.encoders = nn.ModuleList([_mlp(in_dim, hidden, dim) for _ in range(views)])  # phi_v
        self.decoders = nn.ModuleList([_mlp(dim, hidden, in_dim) for _ in range(views)])  # psi_v

    def encode(self, f: torch.Tensor) -> torch.Tensor:
        """Content [n, in_dim] -> view latents [n, V, dim]."""
        return torch.stack([enc(f) for enc in self.encoders], dim=1)

    @staticmethod
    def quantise(z: torch.Tensor, codebook: SharedCodebook, levels: Optional[int] = None) -> Quantised:
        """Residual quantisation of [..., dim] over the first ``levels`` codebooks, cosine selection."""
        levels = codebook.levels if levels is None else levels
        residual, z_hat, codes, residuals = z, torch.zeros_like(z), [], []
        for level in range(levels):
            residuals.append(residual)
            c = codebook.cosine_logits(residual, level).argmax(-1)
            e = codebook.books[level][c]
            codes.append(c)
            z_hat = z_hat + e
            residual = residual - e
        codes_t = torch.stack(codes, -1) if codes else torch.zeros(*z.shape[:-1], 0, dtype=torch.long, device=z.device)
        return Quantised(codes_t, z_hat, residuals)

    def losses(self, f: torch.Tensor, z: torch.Tensor, q: Quantised, codebook: SharedCodebook, hc_levels: int) -> dict:
        """L_RQ, L_Rec, L_div and the tokenizer half of L_HC for content ``f`` [n, in_dim]."""
        rq = F.mse_loss(q.z_hat, z.detach()) + self.beta * F.mse_loss(z, q.z_hat.detach())
        z_st = z + (q.z_hat - z).detach()  # straight-through: the decoder's gradient reaches the encoders
        recon = torch.stack([dec(z_st[:, v]) for v, dec in enumerate(self.decoders)], 1).mean(1)
        rec = (1 - F.cosine_similarity(f, recon, dim=-1)).mean()
        hc = z.new_zeros(())
        for level in range(hc_levels):
            logp = torch.log_softmax(codebook.cosine_logits(q.residuals[level], level), -1)
            hc = hc - logp.gather(-1, q.codes[..., level:level + 1]).mean()
        return {"rq": rq, "rec": rec, "div": view_similarity(z), "hc_tok": hc}


def view_similarity(z: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine between the distinct views of each item (z: [n, V, dim]); 0 for V = 1."""
    v = z.shape[1]
    if v < 2:
        return z.new_zeros(())
    zn = F.normalize(z, dim=-1)
    gram = zn @ zn.transpose(1, 2)  # [n, V, V]
    off = ~torch.eye(v, dtype=torch.bool, device=z.device)
    return gram[:, off].pow(2).mean()
