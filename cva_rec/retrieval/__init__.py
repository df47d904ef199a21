"""Generative recall, dense rerank (GRDR): multi-view semantic IDs, a prefix trie of the catalogue's
code paths, a generative retriever decoding paths by trie-constrained beam search, and dense
reranking of the recalled candidates by any trained cva_rec run. See docs/retrieval.md.
"""
from cva_rec.registry import lazy_exports

_LAZY = {"train_retriever": "cva_rec.retrieval.retriever_run", "load_retriever": "cva_rec.retrieval.retriever_run", "retrieve_run": "cva_rec.retrieval.two_stage", "two_stage_eval": "cva_rec.retrieval.two_stage", "beam_search": "cva_rec.retrieval.beam_search", "BeamResult": "cva_rec.retrieval.beam_result"}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)  # names load on first use
