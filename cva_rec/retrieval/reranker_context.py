"""Recall with the reranker's own encoder as the context (the issue's "SASRec's own encoder").

The learned GRDR retriever (``grdr.py``) reads the history with a transformer of its own and
decodes paths of content-derived codes. That recall stage and the dense reranker then disagree
about which items are good, and recall caps the two-stage metrics. This retriever is built
from the trained reranker instead, so the two stages rank by the same function:

* **Codes** (the tokenizer): residual k-means over the reranker's item table ``E`` (the rows
  ``full_sort_predict`` multiplies with), ``L`` levels x ``K`` codes. View ``v`` of an item takes
  its ``v``-th nearest level-1 centroid and quantises greedily below it with the *shared*
  lower-level codebooks, so the ``N_v`` views are distinct paths through one codebook.
* **Context**: the reranker's user state ``u`` (its sequence output); in two-stage evaluation
  the same ``u`` then reranks the candidates, so the history is encoded once.
* **Decoder**: ``P(c_l | c_<l, u) = softmax_c(u . C_l[c])`` over the level's ``K`` centroids.
  The per-level normaliser depends on ``u`` only, so a full path's log-likelihood is
  ``u . (C_1[c_1] + ... + C_L[c_L]) - const(u)``: the reranker's own score of the path's
  reconstruction ``e_hat``. Trie-constrained beam search therefore prunes by partial sums of
  the reranker's score, and with a beam as wide as the trie it ranks every path exactly by
  ``u . e_hat`` (tested against an enumeration).

It has no trainable weights of its own: the reranker's next-item softmax training is its
training, and "fitting" it is the k-means above. ``table_fingerprint`` ties a retriever to the
exact item table it was fitted on, so it is never paired with another reranker by mistake.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from cva_rec.errors import ConfigError
from cva_rec.retrieval.beam_search import BeamResult, beam_search
from cva_rec.retrieval.trie import TorchTrie


def table_fingerprint(table: torch.Tensor) -> str:
    """sha256 of the item table's float32 bytes (rows 1.., the padding row 0 excluded)."""
    rows = table.detach()[1:].float().cpu().contiguous().numpy()
    return hashlib.sha256(rows.tobytes()).hexdigest()


def multiview_residual_codes(vectors: torch.Tensor, centroids: torch.Tensor, views: int) -> torch.Tensor:
    """[n, d] vectors, centroids [L, K, d] -> codes [n, views, L]: view ``v`` starts at the
    ``v``-th nearest level-1 centroid, then picks the nearest centroid of each residual."""
    levels, k, _ = centroids.shape
    if not 1 <= views <= k:
        raise ConfigError(f"views must be in [1, {k}] (the level-1 codes), got {views}")
    d1 = torch.cdist(vectors, centroids[0])
    first = d1.topk(views, dim=1, largest=False).indices  # [n, views]
    out = torch.empty(len(vectors), views, levels, dtype=torch.long)
    for v in range(views):
        residual = vectors - centroids[0][first[:, v]]
        out[:, v, 0] = first[:, v]
        for level in range(1, levels):
            code = torch.cdist(residual, centroids[level]).argmin(1)
            residual = residual - centroids[level][code]
            out[:, v, level] = code
    return out


def fit_table_codes(table: torch.Tensor, levels: int, codes: int, views: int, seed: int, iters: int = 25):
    """RQ-KMeans over the item table's real rows -> (centroids [L, K, d], codes [n_items, V, L]
    with row 0, the padding item, set to -1)."""
    from cva_rec.semantic_ids.rq_kmeans import RQKMeans

    rows = table.detach()[1:].float().cpu()
    if len(rows) < codes:
        raise ConfigError(f"{codes} codes per level need at least {codes} items, the table has {len(rows)}")
    rq = RQKMeans(levels=levels, codes=codes, iters=iters, seed=seed).fit(rows)
    centroids = rq.centroids.cpu().float()
    item_codes = torch.full((len(table), views, levels), -1, dtype=torch.long)
    item_codes[1:] = multiview_residual_codes(rows, centroids, views)
    return centroids, item_codes


class RerankerContextRetriever(nn.Module):
    """Beam search over code paths, scored by the reranker's user state (see the module text)."""

    def __init__(self, centroids: torch.Tensor, fingerprint: str = ""):
        super().__init__()
        self.register_buffer("centroids", centroids.float())  # [L, K, d]
        self.fingerprint = fingerprint

    @property
    def levels(self) -> int:
        return int(self.centroids.shape[0])

    def level_log_probs(self, u: torch.Tensor) -> torch.Tensor:
        """log P(c_l | u) for every level at once: [U, L, K] (one matmul; no prefix dependence)."""
        return torch.log_softmax(torch.einsum("ud,lkd->ulk", u.float(), self.centroids), dim=-1)

    def path_scores(self, u: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
        """[U, d] users x [P, L] paths -> [U, P] log-likelihoods (reference for tests / diagnostics)."""
        logp = self.level_log_probs(u)
        return sum(logp[:, level, paths[:, level]] for level in range(self.levels))

    @torch.no_grad()
    def recall(self, u: torch.Tensor, trie: TorchTrie, beam: int) -> BeamResult:
        """User states [U, d] (the reranker's sequence output) -> the top-``beam`` trie paths per user."""
        return beam_search(self.level_log_probs(u), trie, len(u), beam)  # no prefix dependence: a [U, L, K] table


def check_same_table(retriever: RerankerContextRetriever, table: torch.Tensor) -> None:
    """A ConfigError unless ``table`` is the item table the retriever was fitted on."""
    if retriever.fingerprint != table_fingerprint(table):
        raise ConfigError("the retriever was fitted on another reranker's item table: rerank with the run it names "
                          "(retriever.reranker in its config.yaml), or fit a retriever on this run")


__all__ = ["RerankerContextRetriever", "fit_table_codes", "multiview_residual_codes", "table_fingerprint",
           "check_same_table"]
