"""ganforge's metrics agree with the reference packages on identical features.

References: pytorch-fid (Fréchet distance), torch-fidelity (KID, IS) and prdc
(precision, recall, density, coverage), installed with --no-deps; a torchvision
stand-in lets them import offline (see torchvision_standin.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganforge.metrics.frechet import feature_stats, fid_from_features, frechet_distance
from ganforge.metrics.inception_score import inception_score
from ganforge.metrics.kid import kid
from ganforge.metrics.prdc import manifold_metrics

from . import torchvision_standin

torchvision_standin.install()


def _features(n: int, d: int, shift: float, seed: int) -> np.ndarray:
    """Correlated, non-negative (ReLU-pool-like) features."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    x = rng.normal(size=(n, d)) @ mix + shift
    return np.abs(x).astype(np.float32)


@pytest.mark.parametrize(("d", "shift"), [(64, 0.0), (64, 0.3), (256, 0.1)])
def test_fid_matches_pytorch_fid(d: int, shift: float) -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = _features(1500, d, 0.0, 1), _features(1200, d, shift, 2)
    ours = fid_from_features(a, b)
    ref = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False),
                                     b.mean(0), np.cov(b, rowvar=False))
    assert ours == pytest.approx(float(ref), rel=1e-6, abs=1e-9)
    assert ours > 0 or shift == 0.0


def test_fid_singular_covariance_matches_pytorch_fid() -> None:
    """Fewer samples than dimensions: the eigen-decomposition fallback path."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = _features(120, 256, 0.0, 3), _features(150, 256, 0.2, 4)
    sa, sb = feature_stats(a), feature_stats(b)
    ours = frechet_distance(sa, sb)
    ref = calculate_frechet_distance(sa.mu.numpy(), sa.sigma.numpy(),
                                     sb.mu.numpy(), sb.sigma.numpy())
    assert ours == pytest.approx(float(ref), rel=1e-5)


def test_fid_of_a_set_with_itself_is_zero() -> None:
    a = _features(800, 64, 0.0, 5)
    assert abs(fid_from_features(a, a)) < 1e-8


def test_kid_matches_torch_fidelity() -> None:
    from torch_fidelity.metric_kid import kid_features_to_metric

    a, b = _features(700, 128, 0.0, 6), _features(600, 128, 0.2, 7)
    ours = kid(a, b, subsets=20, subset_size=300, seed=11)
    # float64 on both sides: the reference keeps its input dtype (float32 rounds at 1e-6)
    ref = kid_features_to_metric(torch.from_numpy(a).double(), torch.from_numpy(b).double(),
                                 kid_subsets=20,
                                 kid_subset_size=300, rng_seed=11, verbose=False)
    assert ours["kid_mean"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-6)
    assert ours["kid_std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-6)
    same = kid(a[:350], a[350:], subsets=20, subset_size=300)  # one distribution
    assert abs(same["kid_mean"]) < ours["kid_mean"] / 10


@pytest.mark.parametrize("shuffle", [True, False])
def test_inception_score_matches_torch_fidelity(shuffle: bool) -> None:
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.from_numpy(np.random.default_rng(9).normal(size=(1000, 10)) * 3)
    ours = inception_score(logits, splits=10, shuffle=shuffle, seed=5)
    ref = isc_features_to_metric(logits, splits=10, shuffle=shuffle, rng_seed=5)
    assert ours["is_mean"] == pytest.approx(ref["inception_score_mean"], rel=1e-9)
    assert ours["is_std"] == pytest.approx(ref["inception_score_std"], rel=1e-6)
    confident = inception_score(torch.eye(10).repeat(100, 1) * 50, shuffle=False)
    assert confident["is_mean"] == pytest.approx(10.0, rel=1e-3)  # sharp and diverse


@pytest.mark.parametrize("k", [3, 5])
def test_prdc_matches_prdc_package(k: int) -> None:
    from prdc import compute_prdc

    a, b = _features(900, 32, 0.0, 10), _features(700, 32, 0.15, 12)
    ref = compute_prdc(real_features=a, fake_features=b, nearest_k=k)
    ours = manifold_metrics(a, b, pr_k=k, dc_k=k)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(ref[key]), abs=1e-12), key
    assert 0.0 < ours["precision"] < 1.0 and 0.0 < ours["recall"] < 1.0
