"""Tokenizer + generative retriever joined through one shared codebook (GRDR sec. 3.3), and recall.

Two modes:

* **learned** (``tokenizer`` set): item codes come from the multi-view tokenizer, co-trained with
  the retriever (``cotrain.py``); ``item_codes()`` quantises every item's content.
* **fixed** (``fixed_codes`` set): the codes of a codes file (e.g. single-view RQ-KMeans codes from
  ``cva-rec tokenize``, ``N_v = 1``); only the retriever and the codebook vectors it decodes with
  are trained, the paths stay as given.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from cva_rec.retrieval.beam_search import BeamResult, beam_search
from cva_rec.retrieval.generative_retriever import GenerativeRetriever
from cva_rec.retrieval.multiview_tokenizer import MultiViewTokenizer, SharedCodebook
from cva_rec.retrieval.trie import TorchTrie


class GRDR(nn.Module):
    def __init__(self, codebook: SharedCodebook, retriever: GenerativeRetriever, tokenizer: Optional[MultiViewTokenizer] = None,
                 fixed_codes: Optional[torch.Tensor] = None, content: Optional[torch.Tensor] = None):
        super().__init__()
        if (tokenizer is None) == (fixed_codes is None):
            raise ValueError("GRDR needs exactly one of a tokenizer (learned codes) or fixed codes")
        self.codebook, self.retriever, self.tokenizer = codebook, retriever, tokenizer
        self.register_buffer("fixed_codes", fixed_codes)  # None in learned mode
        # the items' content vectors [n_items, d] (row 0 = padding); rebuilt from the feature store, never saved
        self.register_buffer("content", content, persistent=False)

    @property
    def views(self) -> int:
        return self.tokenizer.views if self.tokenizer is not None else int(self.fixed_codes.shape[1])

    def codes_of(self, items: torch.Tensor, levels: Optional[int] = None) -> torch.Tensor:
        """Current code paths of ``items`` [n] -> [n, V, levels] (levels default: all)."""
        levels = self.codebook.levels if levels is None else levels
        if self.tokenizer is None:
            return self.fixed_codes[items][..., :levels]
        return MultiViewTokenizer.quantise(self.tokenizer.encode(self.content[items]), self.codebook, levels).codes

    @torch.no_grad()
    def item_codes(self, chunk: int = 65536) -> torch.Tensor:
        """Every item's paths [n_items, V, L] (row 0, the padding item, included)."""
        n = self.content.shape[0] if self.content is not None else self.fixed_codes.shape[0]
        ids = torch.arange(n, device=self.codebook.books[0].device)
        return torch.cat([self.codes_of(part) for part in ids.split(chunk)])

    @torch.no_grad()
    def recall(self, item_seq: torch.Tensor, seq_len: torch.Tensor, trie: TorchTrie, beam: int) -> BeamResult:
        """Histories [U, T] (left-aligned) -> the top-``beam`` trie paths per user."""
        u = self.retriever.user_context(item_seq, seq_len, self.content)
        return beam_search(self.retriever.decoder(u, self.codebook), trie, len(u), beam)
