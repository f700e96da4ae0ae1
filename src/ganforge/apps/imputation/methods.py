"""Imputation methods behind one fit/transform interface: GAIN and three baselines.

All work on data scaled to [0, 1] with NaN for missing entries; their outputs are
clipped to [0, 1] (the observed range) like GAIN's sigmoid output.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ganforge.apps.imputation.gain import GAIN, GAINConfig
from ganforge.errors import ConfigError

METHODS = ("gain", "mean", "mice", "missforest")


class Imputer(Protocol):
    """What the harness needs: fit on data with NaNs, then fill NaNs of any rows."""

    def fit(self, x: np.ndarray) -> Any: ...

    def transform(self, x: np.ndarray) -> np.ndarray: ...


class _Clipped:
    """A scikit-learn imputer whose imputed entries are clipped to [0, 1]."""

    def __init__(self, imputer: Any) -> None:
        self.imputer = imputer

    def fit(self, x: np.ndarray) -> _Clipped:
        self.imputer.fit(x)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        filled = np.clip(self.imputer.transform(x), 0.0, 1.0)
        return np.where(np.isnan(x), filled, x)


def make_imputer(method: str, seed: int = 0, progress: bool = False,
                 gain: GAINConfig | None = None, forest_trees: int = 30,
                 forest_iterations: int = 5) -> Imputer:
    """Build ``method``: gain, mean, mice (IterativeImputer with BayesianRidge) or
    missforest (IterativeImputer with a random forest, MissForest-style)."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, SimpleImputer

    if method == "gain":
        cfg = gain if gain is not None else GAINConfig(seed=seed)
        return GAIN(cfg, progress=progress)
    if method == "mean":
        return _Clipped(SimpleImputer(strategy="mean"))
    verbose = 1 if progress else 0  # scikit-learn prints one line per round
    if method == "mice":
        return _Clipped(IterativeImputer(max_iter=10, random_state=seed, tol=1e-3,
                                         verbose=verbose, min_value=0.0, max_value=1.0))
    if method == "missforest":
        from sklearn.ensemble import RandomForestRegressor

        forest = RandomForestRegressor(n_estimators=forest_trees, n_jobs=-1,
                                       random_state=seed, max_features="sqrt")
        return _Clipped(IterativeImputer(estimator=forest, max_iter=forest_iterations,
                                         random_state=seed, initial_strategy="mean",
                                         verbose=verbose, min_value=0.0, max_value=1.0))
    raise ConfigError(f"unknown imputation method {method!r}; choose one of {list(METHODS)}.")
