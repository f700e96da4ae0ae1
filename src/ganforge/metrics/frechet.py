"""Fréchet distance between Gaussians fitted to features (FID, intra-FID).

FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).
The trace term needs only the eigenvalues of S1 S2, which equal those of the symmetric
matrix L^T S2 L for the Cholesky factor S1 = L L^T (or sqrt(S1) S2 sqrt(S1) when S1 is
singular). Symmetric eigenvalues replace ``scipy.linalg.sqrtm`` of a non-symmetric matrix:
same value, several times faster, and no complex round-off to discard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def as_float64(x: ArrayLike) -> torch.Tensor:
    """A CPU float64 tensor view/copy of a tensor or array."""
    t = torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else x.detach()
    return t.to(device="cpu", dtype=torch.float64)


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance (ddof=1) of n feature vectors, in float64."""

    mu: torch.Tensor
    sigma: torch.Tensor
    n: int


def feature_stats(features: ArrayLike) -> FeatureStats:
    """Fit a Gaussian to (N, D) features (N >= 2)."""
    f = as_float64(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) features, got shape {tuple(f.shape)}")
    mu = f.mean(dim=0)
    centred = f - mu
    sigma = centred.T @ centred / (f.shape[0] - 1)
    return FeatureStats(mu, sigma, int(f.shape[0]))


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(m)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> float:
    """tr((S1 S2)^(1/2)) for symmetric positive semi-definite S1, S2."""
    chol, info = torch.linalg.cholesky_ex(s1)
    if int(info) == 0:
        m = chol.T @ s2 @ chol
    else:  # singular S1 (fewer samples than dimensions): symmetric square root instead
        root = _sqrt_psd(s1)
        m = root @ s2 @ root
    eig = torch.linalg.eigvalsh((m + m.T) / 2)
    return float(eig.clamp_min(0).sqrt().sum())


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """Fréchet distance between the Gaussians of two feature sets."""
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"feature dimensions differ: {a.mu.numel()} vs {b.mu.numel()}")
    diff = a.mu - b.mu
    value = float(diff @ diff) + float(a.sigma.trace() + b.sigma.trace())
    return value - 2.0 * trace_sqrt_product(a.sigma, b.sigma)


def fid_from_features(real: ArrayLike, fake: ArrayLike) -> float:
    """FID between two (N, D) feature sets."""
    return frechet_distance(feature_stats(real), feature_stats(fake))


def intra_fid(real: ArrayLike, real_labels: ArrayLike, fake: ArrayLike,
              fake_labels: ArrayLike) -> tuple[float, dict[int, float]]:
    """Mean over classes of the FID between real and generated samples of each class."""
    rf, ff = as_float64(real), as_float64(fake)
    ry = torch.as_tensor(np.asarray(real_labels)).long()
    fy = torch.as_tensor(np.asarray(fake_labels)).long()
    per_class: dict[int, float] = {}
    for c in sorted(set(ry.tolist())):
        r, f = rf[ry == c], ff[fy == c]
        if len(r) < 2 or len(f) < 2:
            raise ValueError(f"class {c} has {len(r)} real and {len(f)} generated samples; "
                             "intra-FID needs at least 2 of each per class")
        per_class[c] = fid_from_features(r, f)
    return float(np.mean(list(per_class.values()))), per_class
