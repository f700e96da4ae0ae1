"""Controlled image degradations (blur, noise) for checking that metrics respond to them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of uint8 NCHW images (replicate padding), rounded to uint8."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    y = F.pad(x.float(), (radius, radius, 0, 0), mode="replicate")
    y = F.conv2d(y, k, groups=x.shape[1])
    y = F.pad(y, (0, 0, radius, radius), mode="replicate")
    y = F.conv2d(y, k.transpose(2, 3), groups=x.shape[1])
    return y.round().clamp(0, 255).to(torch.uint8)


def add_noise(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Additive Gaussian noise (seeded), rounded and clipped to uint8."""
    g = torch.Generator().manual_seed(seed)
    y = x.float() + torch.randn(x.shape, generator=g) * std
    return y.round().clamp(0, 255).to(torch.uint8)
