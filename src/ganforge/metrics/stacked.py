"""Mode coverage on Stacked MNIST (the Unrolled-GAN / VEEGAN / PacGAN protocol).

Each of the three channels of a sample is classified by the shipped MNIST classifier;
the three digits name one of 1,000 modes (``100 * R + 10 * G + B``). A mode is captured
when at least one sample falls in it. The KL divergence is

    KL(p_model || uniform) = sum_k p_k log(1000 p_k)   (natural log, 0 log 0 = 0),

p being the generated samples' distribution over the 1,000 modes: the direction of the
PacGAN code (``KLD(p, q)`` with p the model's mode frequencies and q uniform). The
papers report both numbers from 26,000 samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganforge.errors import DataError
from ganforge.metrics.classifier import DomainClassifier, load_classifier, predict

NUM_MODES = 1000
PAPER_SAMPLES = 26_000  # generated samples per evaluation in the PacGAN / VEEGAN tables


@dataclass(frozen=True)
class StackedModeStats:
    """Modes captured (of 1,000), KL(p_model || uniform) and the per-mode counts."""

    modes_captured: int
    n_modes: int
    kl: float
    n_samples: int
    counts: torch.Tensor  # (1000,) int64, samples per mode

    def as_dict(self, with_counts: bool = False) -> dict[str, float | int | list[int]]:
        """Plain numbers for JSON; the 1,000 counts only when asked for."""
        out: dict[str, float | int | list[int]] = {
            "modes_captured": self.modes_captured, "n_modes": self.n_modes,
            "kl": self.kl, "n_samples": self.n_samples}
        if with_counts:
            out["counts"] = [int(c) for c in self.counts]
        return out


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as they are; float images in [-1, 1] mapped to uint8 (rounded)."""
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise DataError(f"images must be uint8 or floats in [-1, 1], got {images.dtype}")
    return ((images.detach().float().cpu() + 1.0) * 127.5).round_().clamp_(0, 255).to(
        torch.uint8)


def classify_stacks(images: torch.Tensor, classifier: DomainClassifier | None = None,
                    batch_size: int = 1000) -> torch.Tensor:
    """Mode label ``100 * R + 10 * G + B`` of each (N, 3, H, W) stack, each channel
    classified as a digit by the shipped MNIST classifier; ``batch_size`` stacks at a time."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
        raise DataError(f"Stacked MNIST samples must be (N, 3, H, W) images, got {shape}")
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    model = classifier if classifier is not None else load_classifier("mnist")
    labels = []
    for start in range(0, len(images), batch_size):
        chunk = to_uint8(images[start:start + batch_size])
        n, _, h, w = chunk.shape
        _, logits = predict(model, chunk.reshape(n * 3, 1, h, w), batch_size=3 * n)
        digits = logits.argmax(1).reshape(n, 3)
        labels.append(100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2])
    return torch.cat(labels) if labels else torch.empty(0, dtype=torch.int64)


def mode_counts_stats(labels: torch.Tensor) -> StackedModeStats:
    """Modes captured and KL(p || uniform) of mode labels in [0, 1000)."""
    labels = labels.long().cpu()
    if labels.numel() == 0:
        raise DataError("Stacked MNIST mode statistics need at least one sample")
    if labels.min() < 0 or labels.max() >= NUM_MODES:
        raise DataError(f"mode labels must lie in [0, {NUM_MODES}), got "
                        f"{int(labels.min())}..{int(labels.max())}")
    counts = torch.bincount(labels, minlength=NUM_MODES)
    p = counts.double() / len(labels)
    nz = p > 0
    kl = float((p[nz] * (p[nz] * NUM_MODES).log()).sum())
    return StackedModeStats(int(nz.sum()), NUM_MODES, max(kl, 0.0), len(labels), counts)


def stacked_mode_stats(images: torch.Tensor, classifier: DomainClassifier | None = None,
                       batch_size: int = 1000) -> StackedModeStats:
    """Modes captured (of 1,000) and KL(p_model || uniform) of Stacked MNIST samples:
    generator output (floats in [-1, 1]) or uint8 images, (N, 3, H, W)."""
    return mode_counts_stats(classify_stacks(images, classifier, batch_size))


def uniform_kl_floor(n: int, trials: int = 20, seed: int = 0) -> float:
    """Mean KL(p_hat || uniform) of ``n`` draws from the uniform distribution over the
    1,000 modes: what a perfect generator scores with ``n`` samples (about 0.019 for
    26,000)."""
    if n < 1 or trials < 1:
        raise DataError(f"need n >= 1 and trials >= 1, got {n} and {trials}")
    gen = torch.Generator().manual_seed(seed)
    kls = [mode_counts_stats(torch.randint(0, NUM_MODES, (n,), generator=gen)).kl
           for _ in range(trials)]
    return math.fsum(kls) / trials
