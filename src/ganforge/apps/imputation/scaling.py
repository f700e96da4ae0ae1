"""Min-max scaling fitted on the observed entries of each column (NaN = missing)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MinMax:
    """Per-column minimum and range of the observed values."""

    low: np.ndarray
    span: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> MinMax:
        low = np.nanmin(x, axis=0)
        span = np.nanmax(x, axis=0) - low
        return cls(low, np.where(span > 0, span, 1.0))

    def scale(self, x: np.ndarray) -> np.ndarray:
        return (x - self.low) / self.span

    def unscale(self, x: np.ndarray) -> np.ndarray:
        return x * self.span + self.low
