"""LUCID semantic IDs (FLUID sec. 3.2-3.4): RQ-KMeans codes, slice/room codes, prefix n-gram embeddings, diagnostics.

The ``semantic_id`` item encoder lives in ``cva_rec/encoders/semantic_id.py``.
"""
from cva_rec.semantic_ids.codes import SemanticCodes, SliceRule, majority_vote, slice_codes
from cva_rec.semantic_ids.diagnostics import code_diagnostics, format_table
from cva_rec.semantic_ids.pca import PcaProjection
from cva_rec.semantic_ids.prefix_ngram import PrefixNgramEmbedding, composite_index
from cva_rec.semantic_ids.rq_kmeans import RQKMeans

__all__ = ["RQKMeans", "PcaProjection", "SemanticCodes", "SliceRule", "majority_vote", "slice_codes",
           "PrefixNgramEmbedding", "composite_index", "code_diagnostics", "format_table"]
