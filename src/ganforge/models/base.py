"""What every generator exposes to the rest of ganforge."""

from __future__ import annotations

import torch
from torch import nn


class Generator(nn.Module):
    """Base class: ``forward(z, labels=None)`` maps latents (and labels) to samples."""

    z_dim: int
    num_classes: int | None
    sample_shape: tuple[int, ...]
    kind: str

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """Standard-normal latents of shape (n, z_dim)."""
        return torch.randn(n, self.z_dim, generator=generator, device=device)

    def check_labels(self, n: int, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Validate labels against the model's conditioning."""
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("this generator is unconditional: do not pass labels")
            return None
        if labels is None:
            raise ValueError(f"this generator is class-conditional ({self.num_classes} "
                             "classes): pass labels")
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes - 1}]")
        return labels.long()


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) convs/linears, N(1, 0.02) norm scales."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
