"""Generative recall, dense rerank (GRDR): multi-view semantic IDs, a prefix trie of the catalogue's
code paths, a generative retriever decoding paths by trie-constrained beam search, and dense
reranking of the recalled candidates by any trained cva_rec run. See docs/retrieval.md.
"""
