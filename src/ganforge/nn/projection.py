"""Projection discriminator head (Miyato & Koyama, 2018)."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """``logit = w.phi + b + <embed(y), phi>``; unconditional when ``num_classes`` is None."""

    def __init__(self, features: int, num_classes: int | None = None,
                 linear: nn.Module | None = None, embed: nn.Module | None = None) -> None:
        """``linear`` (features -> 1) and ``embed`` (class -> features) replace the
        default ``nn.Linear`` / ``nn.Embedding`` (e.g. equalized-lr versions)."""
        super().__init__()
        self.linear = linear if linear is not None else nn.Linear(features, 1)
        self.embed = None
        if num_classes:
            self.embed = embed if embed is not None else nn.Embedding(num_classes, features)
            if embed is None:
                nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, phi: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        out = self.linear(phi).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            out = out + (self.embed(labels) * phi).sum(dim=1)
        return out
