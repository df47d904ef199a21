"""Registry: built-ins register on import, bad names/options are ConfigErrors, user encoders plug in."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cva_rec.encoders import ENCODERS, ItemEncoder, build_encoder, encoder_options, register_encoder
from cva_rec.encoders.layers import content_input_dim, masked_mean
from cva_rec.errors import ConfigError

from conftest import N_ITEMS

N = N_ITEMS + 1


def test_builtins_registered_on_import():
    assert {"id", "pooling", "mlp", "perceiver_io", "cva", "id_content"} <= set(ENCODERS.names())
    assert encoder_options("cva")["depth"] == 4 and encoder_options("perceiver_io")["num_latents"] == 32


def test_unknown_name_and_option(content):
    with pytest.raises(ConfigError, match="did you mean 'cva'"):
        build_encoder({"name": "cvaa"}, N, 8, content)
    with pytest.raises(ConfigError, match="did you mean 'depth'"):
        build_encoder({"name": "cva", "deph": 2}, N, 8, content)
    with pytest.raises(ConfigError, match="name is required"):
        build_encoder({}, N, 8, content)


@pytest.mark.parametrize("name", ["pooling", "mlp", "perceiver_io", "cva"])
def test_feature_width_mismatch(name, content):
    with pytest.raises(ConfigError, match="384-d"):
        build_encoder({"name": name, "input_dim": 512}, N, 8, content)
    build_encoder({"name": name, "input_dim": 384}, N, 8, content)  # matching width is fine


def test_user_registered_encoder_through_build_encoder(content):
    @register_encoder("test_max_pool")
    class MaxPool(ItemEncoder):
        def __init__(self, n_items, output_dim, content, scale: float = 1.0):
            super().__init__(n_items, output_dim, content)
            self.proj = nn.Linear(content_input_dim(content, None, "test_max_pool"), output_dim)
            self.scale = scale

        def encode(self, item_ids):
            frames, mask, _ = self.content.gather(item_ids)
            return self.proj(masked_mean(frames, mask)) * self.scale

    enc = build_encoder({"name": "test_max_pool", "scale": 2.0}, N, 8, content)
    out = enc(torch.tensor([[0, 1], [2, 0]]))
    assert out.shape == (2, 2, 8) and (out[0, 0] == 0).all() and out[0, 1].abs().sum() > 0
    with pytest.raises(ConfigError):
        build_encoder({"name": "test_max_pool", "scael": 2.0}, N, 8, content)
    with pytest.raises(ConfigError, match="already registered"):
        register_encoder("test_max_pool")(type("Other", (ItemEncoder,), {}))
