"""Data: atomic files, the protocol's dataset rules, user histories, held-out cold items, the streaming engine.

* :mod:`.files`       atomic-file checks (paths, headers, encodings) before RecBole reads them
* :mod:`.rules`       the dataset rules every recipe shares (filters, leave-two-out, normalisation)
* :mod:`.dataset`     ``build_data(cfg)`` -> :class:`SequentialData` through RecBole
* :mod:`.histories`   per-user sequences and the histories evaluation masks
* :mod:`.cold_items`  a seeded share of items held out of training and validation
* :mod:`.ranges`      the vectorised gather of ``[start, end)`` ranges
* :mod:`.synthetic`   MicroLens-shaped synthetic logs
* :mod:`.streaming`   the streaming engine (``dataset.engine: streaming``)

Names are loaded on first use so that ``import cva_rec.data.files`` does not import torch.
"""
from cva_rec.registry import lazy_exports

_LAZY = {"SequentialData": "cva_rec.data.dataset", "build_data": "cva_rec.data.dataset",
         "UserHistory": "cva_rec.data.histories", "UserSequences": "cva_rec.data.histories"}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)  # names load on first use
