"""Item encoders: item index -> vector, chosen by ``item_encoder.name`` in a config."""
from cva_rec.encoders.base import ItemEncoder
from cva_rec.encoders.registry import ENCODERS, build_encoder, encoder_options, register_encoder

__all__ = ["ItemEncoder", "ENCODERS", "build_encoder", "encoder_options", "register_encoder"]
from cva_rec.encoders import id as _id  # noqa: F401,E402  (registers 'id')
