"""Spectral normalization (Miyato et al., 2018) through PyTorch's own parametrization.

``torch.nn.utils.parametrizations.spectral_norm`` divides a weight by an estimate of its
largest singular value, refined by one power iteration per training forward pass; its
``u``/``v`` vectors are buffers, so they travel with checkpoints and the EMA copy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

SN_EPS = 1e-6


def maybe_sn(module: nn.Module, enabled: bool = True) -> nn.Module:
    """``module`` with its ``weight`` spectrally normalized when ``enabled``."""
    return spectral_norm(module, eps=SN_EPS) if enabled else module


def spectral_normalized(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every submodule whose weight is spectrally normalized."""
    return [(name, m) for name, m in root.named_modules()
            if parametrize.is_parametrized(m, "weight")
            and any(type(p).__name__ == "_SpectralNorm" for p in m.parametrizations["weight"])]


def largest_singular_value(weight: torch.Tensor, dim: int = 0) -> float:
    """Exact largest singular value of ``weight`` flattened to a matrix along ``dim``
    (the matrix spectral normalization divides by)."""
    w = weight.detach().float().movedim(dim, 0).flatten(1)
    return float(torch.linalg.matrix_norm(w, ord=2))
