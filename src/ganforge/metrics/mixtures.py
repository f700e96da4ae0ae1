"""Mode coverage on 2-D Gaussian mixtures (the VEEGAN/PacGAN protocol).

A sample is high quality when it lies within ``n_std`` standard deviations of its
nearest mode; a mode is captured when it has at least one high-quality sample.
Reverse KL compares the distribution of high-quality samples over modes with the
uniform distribution of the data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class ModeStats:
    modes_captured: int
    n_modes: int
    high_quality: float  # fraction of samples
    reverse_kl: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def mode_stats(samples: torch.Tensor, centers: torch.Tensor, std: float,
               n_std: float = 3.0) -> ModeStats:
    """Modes captured, high-quality fraction and reverse KL of 2-D samples."""
    samples, centers = samples.detach().double().cpu(), centers.double().cpu()
    dist = torch.cdist(samples, centers)
    nearest_d, nearest = dist.min(dim=1)
    hq = nearest_d <= n_std * std
    counts = torch.bincount(nearest[hq], minlength=len(centers)).double()
    n_hq = counts.sum().item()
    if n_hq > 0:
        p = counts / n_hq
        nz = p > 0
        rkl = float((p[nz] * (p[nz] * len(centers)).log()).sum())
    else:
        rkl = math.inf
    return ModeStats(int((counts > 0).sum()), len(centers), float(hq.double().mean()), rkl)
