"""Fréchet distance at d=2048: ganforge's Cholesky + symmetric-eigenvalue route against
the usual ``scipy.linalg.sqrtm`` code (as in pytorch-fid), on the same statistics.

Features are 10,000 x 2048 correlated, non-negative vectors (ReLU-pool-like) per side;
both sides' means and covariances are computed once, then each method is timed on the
same float64 statistics, alternating methods every round.

    .venv/bin/python benchmarks/frechet_speed.py [--rounds 3] \
        [--json benchmarks/results/frechet_speed.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from ganforge.metrics.frechet import FeatureStats, feature_stats, frechet_distance


def sqrtm_frechet(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray,
                  eps: float = 1e-6) -> float:
    """The common reference formulation: sqrtm of the product, eps offset if singular."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _features(n: int, d: int, shift: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + shift).abs()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/frechet_speed.json"))
    args = ap.parse_args()

    a = feature_stats(_features(args.n, args.dim, 0.0, 1))
    b = feature_stats(_features(args.n, args.dim, 0.1, 2))
    np_stats = [a.mu.numpy(), a.sigma.numpy(), b.mu.numpy(), b.sigma.numpy()]
    times: dict[str, list[float]] = {"ganforge": [], "scipy_sqrtm": []}
    values: dict[str, float] = {}
    for _ in range(args.rounds):
        t = time.perf_counter()
        values["ganforge"] = frechet_distance(FeatureStats(a.mu, a.sigma, a.n),
                                              FeatureStats(b.mu, b.sigma, b.n))
        times["ganforge"].append(time.perf_counter() - t)
        t = time.perf_counter()
        values["scipy_sqrtm"] = sqrtm_frechet(*np_stats)
        times["scipy_sqrtm"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    rel = abs(values["ganforge"] - values["scipy_sqrtm"]) / abs(values["scipy_sqrtm"])
    result = {
        "benchmark": "frechet_speed", "n": args.n, "dim": args.dim, "rounds": args.rounds,
        "median_s": med, "all_s": times, "values": values, "relative_difference": rel,
        "speedup": med["scipy_sqrtm"] / med["ganforge"],
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "scipy": scipy.__version__},
    }
    print(f"{'method':<14}{'median s':>10}{'value':>22}")
    for k in times:
        print(f"{k:<14}{med[k]:>10.3f}{values[k]:>22.12f}")
    print(f"speedup {result['speedup']:.1f}x, relative difference {rel:.2e}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
