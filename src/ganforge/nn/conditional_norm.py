"""Conditional batch normalization (de Vries et al., 2017; as used by SNGAN and BigGAN)."""

from __future__ import annotations

import torch
from torch import nn


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose per-channel gain and bias are linear functions of a condition.

    ``y = BN(x) * (1 + W_g c) + W_b c``. With a one-hot class vector as ``c`` this is the
    per-class gain and bias of SNGAN/SAGAN; with BigGAN's [shared class embedding, z
    chunk] it is BigGAN's conditioning. Both maps start at zero (plain BN).
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels, bias=False)
        self.bias = nn.Linear(cond_dim, channels, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = 1 + self.gain(cond)[:, :, None, None]
        bias = self.bias(cond)[:, :, None, None]
        return self.bn(x) * gain + bias
