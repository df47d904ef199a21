"""The fast path's class of each built-in backbone that has one (``train.fast: true``).

SASRec: fused attention + the fast path's dropout + compile (``fast_sasrec.py``). GRU4Rec: the
fast path's dropout on the input embeddings + compile (the GRU itself is one ATen kernel).
NextItNet: compile (it has no dropout). NARM and STAMP have none (they run as on the exact path).
"""
from __future__ import annotations

from cva_rec.backbones.fast_path import FastBackbone
from cva_rec.backbones.fast_sasrec import FastSASRec
from cva_rec.backbones.gru4rec import TokenGRU4Rec
from cva_rec.backbones.nextitnet import TokenNextItNet
from cva_rec.backbones.sasrec import TokenSASRec


class FastGRU4Rec(FastBackbone, TokenGRU4Rec):
    """TokenGRU4Rec on the fast path (:class:`~cva_rec.backbones.fast_path.FastBackbone`)."""


class FastNextItNet(FastBackbone, TokenNextItNet):
    """TokenNextItNet on the fast path (:class:`~cva_rec.backbones.fast_path.FastBackbone`)."""


FAST_VARIANTS = {TokenSASRec: FastSASRec, TokenGRU4Rec: FastGRU4Rec, TokenNextItNet: FastNextItNet}
