"""Item encoders: item index -> vector, chosen by ``item_encoder.name`` in a config.

Importing this package registers every built-in encoder: ``id``, ``pooling``, ``mlp``,
``perceiver_io``, ``cva``, ``id_content``, ``semantic_id`` and ``lucid``.
"""
from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.registry import ENCODERS, build_encoder, encoder_options, register_encoder

# Each import registers its encoder under its config name.
from cva_rec.encoders.id import IdEncoder  # noqa: E402
from cva_rec.encoders.pooling import PoolingEncoder  # noqa: E402
from cva_rec.encoders.mlp import MlpEncoder  # noqa: E402
from cva_rec.encoders.perceiver_io import PerceiverIoEncoder  # noqa: E402
from cva_rec.encoders.cva import CvaEncoder  # noqa: E402
from cva_rec.encoders.hybrid import IdContentEncoder  # noqa: E402
from cva_rec.encoders.semantic_id import SemanticIdEncoder  # noqa: E402
from cva_rec.encoders.lucid import LucidEncoder  # noqa: E402

__all__ = ["ItemEncoder", "ENCODERS", "build_encoder", "encoder_options", "register_encoder", "IdEncoder",
           "PoolingEncoder", "MlpEncoder", "PerceiverIoEncoder", "CvaEncoder", "IdContentEncoder", "SemanticIdEncoder",
           "LucidEncoder"]
