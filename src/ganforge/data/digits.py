"""scikit-learn's bundled 8x8 handwritten digits."""

from __future__ import annotations

import torch


def load_digits_images() -> tuple[torch.Tensor, torch.Tensor, dict[str, object]]:
    """Return native uint8 images (1797, 1, 8, 8) scaled 0..16 -> 0..255, int64 labels, info."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).to(torch.float64).mul_(255.0 / 16.0)
    x = x.round_().clamp_(0, 255).to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).to(torch.int64)
    info = {"source": "sklearn.datasets.load_digits", "n_images": len(x), "native_resolution": 8}
    return x, labels, info
