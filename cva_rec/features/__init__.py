"""Item content: the on-disk feature store, its alignment to RecBole item ids, and ItemContent."""
from cva_rec.features.align import MISSING_POLICIES, align_to_dataset, align_to_items
from cva_rec.features.content import ItemContent
from cva_rec.features.store import (
    STORAGE_DTYPES,
    FeatureStore,
    FeatureStoreWriter,
    file_sha256,
    open_store,
    partial_path,
)

__all__ = [
    "FeatureStore",
    "FeatureStoreWriter",
    "ItemContent",
    "MISSING_POLICIES",
    "STORAGE_DTYPES",
    "align_to_dataset",
    "align_to_items",
    "file_sha256",
    "open_store",
    "partial_path",
]
