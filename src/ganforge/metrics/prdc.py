"""k-NN manifold metrics: precision and recall (Kynkäänniemi et al. 2019) and density and
coverage (Naeem et al. 2020).

Each sample's manifold ball has the radius of its k-th nearest neighbour in its own set.
Precision: share of generated samples inside some real ball. Recall: share of real
samples inside some generated ball. Density: mean number of real balls holding a
generated sample, over k. Coverage: share of real balls holding a generated sample.
Distances are computed in float64 in row chunks, so memory stays bounded.
"""

from __future__ import annotations

import torch

from ganforge.metrics.frechet import ArrayLike, as_float64

_CHUNK = 1024


def knn_radii(x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Distance from each row to its k-th nearest other row, for every k in ``ks``."""
    kmax = max(ks)
    if len(x) <= kmax:
        raise ValueError(f"need more than k={kmax} samples per set, got {len(x)}")
    kth = []
    for i in range(0, len(x), _CHUNK):
        d = torch.cdist(x[i:i + _CHUNK], x)
        kth.append(d.topk(kmax + 1, dim=1, largest=False).values)  # column 0: itself
    vals = torch.cat(kth)
    return {k: vals[:, k] for k in ks}


def manifold_metrics(real: ArrayLike, fake: ArrayLike, pr_k: int = 3,
                     dc_k: int = 5) -> dict[str, float]:
    """Precision and recall with ``pr_k`` neighbours; density and coverage with ``dc_k``."""
    r, f = as_float64(real), as_float64(fake)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dimensions differ: {r.shape[1]} vs {f.shape[1]}")
    r_radii = knn_radii(r, (pr_k, dc_k))
    f_radius = knn_radii(f, (pr_k,))[pr_k]
    r_pr, r_dc = r_radii[pr_k], r_radii[dc_k]
    in_real_ball = 0
    density_hits = 0.0
    recalled = torch.zeros(len(r), dtype=torch.bool)
    nearest_fake = torch.full((len(r),), float("inf"), dtype=torch.float64)
    for i in range(0, len(f), _CHUNK):
        d = torch.cdist(f[i:i + _CHUNK], r)  # (fake chunk, real)
        in_real_ball += int((d < r_pr[None, :]).any(dim=1).sum())
        density_hits += float((d < r_dc[None, :]).sum())
        recalled |= (d < f_radius[i:i + _CHUNK, None]).any(dim=0)
        nearest_fake = torch.minimum(nearest_fake, d.min(dim=0).values)
    return {"precision": in_real_ball / len(f), "recall": float(recalled.double().mean()),
            "density": density_hits / (dc_k * len(f)),
            "coverage": float((nearest_fake < r_dc).double().mean()),
            "pr_k": pr_k, "dc_k": dc_k}
