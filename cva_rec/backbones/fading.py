"""Reading a token that is fading out of the input (``TokenLayout.presence``) in recurrent backbones.

A token of presence w moves the recurrent state by w times its usual step:
``h_t = h_{t-1} + w_t (GRU(x_t, h_{t-1}) - h_{t-1})``. At w = 1 this is the GRU; at w = 0 the token
is skipped exactly (the state passes through), so the model equals the one without that token.
Used only while some token fades (the ID during a phase-out); otherwise backbones call the fused
``nn.GRU``.
"""
from __future__ import annotations

import torch
from torch import nn


def faded_gru(gru: nn.GRU, x: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
    """``nn.GRU`` (batch_first, unidirectional) over x [B, N, d] with per-token presence [B, N] -> outputs [B, N, H]."""
    inputs = x
    for layer in range(gru.num_layers):
        w_ih, w_hh = getattr(gru, f"weight_ih_l{layer}"), getattr(gru, f"weight_hh_l{layer}")
        b_ih, b_hh = getattr(gru, f"bias_ih_l{layer}", None), getattr(gru, f"bias_hh_l{layer}", None)
        h = x.new_zeros(x.shape[0], gru.hidden_size)
        outputs = []
        for t in range(x.shape[1]):
            step = torch.gru_cell(inputs[:, t], h, w_ih, w_hh, b_ih, b_hh)
            h = h + presence[:, t:t + 1] * (step - h)
            outputs.append(h)
        inputs = torch.stack(outputs, 1)
        if gru.dropout and gru.training and layer < gru.num_layers - 1:
            inputs = nn.functional.dropout(inputs, gru.dropout, training=True)
    return inputs


def run_gru(gru: nn.GRU, x: torch.Tensor, presence) -> torch.Tensor:
    """The GRU's outputs [B, N, H]: RecBole's fused call, or the fading form while a token fades."""
    if presence is None:
        return gru(x)[0]
    return faded_gru(gru, x, presence)
