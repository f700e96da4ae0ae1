"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with the cubic
polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets."""

from __future__ import annotations

import numpy as np
import torch

from ganforge.metrics.frechet import ArrayLike, as_float64


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3,
                      gamma: float | None = None, coef0: float = 1.0) -> torch.Tensor:
    """(gamma x.y + coef0)^degree, gamma defaulting to 1/d."""
    g = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * g + coef0) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, **kernel: float) -> float:
    """Unbiased MMD^2 estimate between equal-size samples x and y."""
    m = x.shape[0]
    kxx, kyy, kxy = (polynomial_kernel(a, b, **kernel) for a, b in ((x, x), (y, y), (x, y)))
    within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum())
    return float(within / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def kid(real: ArrayLike, fake: ArrayLike, subsets: int = 100, subset_size: int = 1000,
        seed: int = 2020, degree: int = 3, gamma: float | None = None,
        coef0: float = 1.0) -> dict[str, float]:
    """KID mean and (population) standard deviation over ``subsets`` random subsets.

    Each subset draws ``subset_size`` rows without replacement from each set with
    ``numpy.random.RandomState(seed)``, the usual protocol. When a set has no more than
    ``subset_size`` rows, subsets of half the smaller set are drawn instead (reported as
    ``subset_size``): whole-set subsets would all be equal and the std meaningless.
    """
    r, f = as_float64(real), as_float64(fake)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dimensions differ: {r.shape[1]} vs {f.shape[1]}")
    smaller = min(len(r), len(f))
    size = subset_size if smaller > subset_size else smaller // 2
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        a = r[torch.from_numpy(rng.choice(len(r), size, replace=False))]
        b = f[torch.from_numpy(rng.choice(len(f), size, replace=False))]
        values[i] = mmd2_unbiased(a, b, degree=degree, gamma=gamma, coef0=coef0)
    return {"kid_mean": float(values.mean()), "kid_std": float(values.std()),
            "subset_size": size, "subsets": subsets}
