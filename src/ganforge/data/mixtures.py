"""The standard 2-D Gaussian mixtures (ring of 8, grid of 25)."""

from __future__ import annotations

import math
from typing import Literal

import torch

from ganforge.errors import DataError

MIXTURE_STD: dict[str, float] = {"ring": 0.01, "grid": 0.05}
MIXTURE_POINTS = 100_000


def mixture_centers(name: Literal["ring", "grid"]) -> torch.Tensor:
    """Mode centers: ring (8, 2) on the unit circle, grid (25, 2) at {-4,-2,0,2,4}^2."""
    if name == "ring":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([angles.cos(), angles.sin()], dim=1).to(torch.float32)
    if name == "grid":
        ticks = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    raise DataError(f"unknown mixture {name!r}; expected 'ring' or 'grid'")


def sample_mixture(
    name: Literal["ring", "grid"], n: int = MIXTURE_POINTS, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` points (float32) and their mode indices (int64), seeded by ``seed``."""
    centers = mixture_centers(name)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(centers), (n,), generator=gen)
    noise = torch.randn(n, 2, generator=gen) * MIXTURE_STD[name]
    return centers[labels] + noise, labels
