"""Inception Score (Salimans et al. 2016) from classifier logits:
exp(E_x KL(p(y|x) || p(y))), mean and standard deviation over splits."""

from __future__ import annotations

import numpy as np

from ganforge.metrics.frechet import ArrayLike, as_float64


def inception_score(logits: ArrayLike, splits: int = 10, shuffle: bool = True,
                    seed: int = 2020) -> dict[str, float]:
    """IS from (N, K) logits; rows are shuffled with ``RandomState(seed)`` before splitting."""
    x = as_float64(logits)
    n = x.shape[0]
    if x.ndim != 2 or n < splits:
        raise ValueError(f"need (N >= splits={splits}, K) logits, got shape {tuple(x.shape)}")
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(n)]
    log_p = x.log_softmax(dim=1)
    p = log_p.exp()
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        p_i, log_p_i = p[lo:hi], log_p[lo:hi]
        log_marginal = p_i.mean(dim=0, keepdim=True).log()
        kl = (p_i * (log_p_i - log_marginal)).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return {"is_mean": float(np.mean(scores)), "is_std": float(np.std(scores)),
            "splits": splits}
