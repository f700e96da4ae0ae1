"""Missingness generators for benchmarks: MCAR and MAR masks (True = observed)."""

from __future__ import annotations

import numpy as np

from ganforge.errors import ConfigError


def _check_rate(rate: float) -> None:
    if not 0.0 < rate < 1.0:
        raise ConfigError(f"missing rate must lie strictly between 0 and 1, got {rate}.")


def mcar_mask(shape: tuple[int, int], rate: float, seed: int) -> np.ndarray:
    """Missing completely at random: each entry is missing with probability ``rate``."""
    _check_rate(rate)
    rng = np.random.default_rng(seed)
    return rng.random(shape) >= rate


def _logistic_offset(scores: np.ndarray, target: float) -> float:
    """Offset b with mean(sigmoid(scores + b)) == target (bisection)."""
    lo, hi = -50.0, 50.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(scores + mid)))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def mar_mask(x: np.ndarray, rate: float, seed: int, observed_fraction: float = 0.3
             ) -> np.ndarray:
    """Missing at random: entries go missing depending on fully observed columns.

    A seeded ``observed_fraction`` of the columns is always observed. In every other
    column, the chance of a missing entry is a logistic function of a random linear
    mix of the standardized observed columns, offset so that the overall missing rate
    over all entries equals ``rate``.
    """
    _check_rate(rate)
    n, d = x.shape
    if d < 2:
        raise ConfigError("MAR needs at least 2 columns (some stay observed to drive it).")
    rng = np.random.default_rng(seed)
    n_obs = min(d - 1, max(1, round(observed_fraction * d)))
    observed_cols = rng.choice(d, n_obs, replace=False)
    per_column = rate * d / (d - n_obs)
    if per_column >= 1.0:
        raise ConfigError(f"MAR with rate {rate} and {n_obs} of {d} columns always observed "
                          "would need every other entry missing; lower the rate.")
    drivers = x[:, observed_cols]
    std = drivers.std(axis=0)
    drivers = (drivers - drivers.mean(axis=0)) / np.where(std > 0, std, 1.0)
    mask = np.ones((n, d), dtype=bool)
    for j in np.setdiff1d(np.arange(d), observed_cols):
        weights = rng.standard_normal(n_obs) / np.sqrt(n_obs)
        scores = drivers @ weights * 2.0
        p = 1 / (1 + np.exp(-(scores + _logistic_offset(scores, per_column))))
        mask[:, j] = rng.random(n) >= p
    return mask
