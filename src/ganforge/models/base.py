"""What every generator exposes to the rest of ganforge."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from ganforge.errors import ConfigError


def check_resolution(family: str, side: int, allowed: tuple[int, ...]) -> int:
    """``side`` when the family supports it; a ValueError (shown by pydantic) otherwise."""
    if side not in allowed:
        raise ValueError(f"{family} supports square images of "
                         f"{', '.join(map(str, allowed))} px; got {side}. Use "
                         "--resolution 32 (or another listed size)")
    return side


def check_truncation(truncation: float | None, space: str = "z") -> float | None:
    """``truncation`` as a float (None stays None), validated for the generator's
    ``truncation_space``: in ``z`` a threshold T > 0 (latents kept within |z| <= T); in
    ``w`` a psi >= 0 (w pulled towards w_avg: 1 = none, 0 = the average)."""
    if truncation is None:
        return None
    try:
        t = float(truncation)
    except (TypeError, ValueError):
        t = math.nan
    if space == "w":
        if not (math.isfinite(t) and t >= 0) or isinstance(truncation, bool):
            raise ConfigError(f"Truncation psi must be a finite number >= 0 (w is pulled "
                              f"towards the average w: 1 = none, 0 = the average image), got "
                              f"{truncation!r}. Typical values are 0.5 to 0.9.")
        return t
    if not (math.isfinite(t) and t > 0) or isinstance(truncation, bool):
        raise ConfigError(f"Truncation threshold must be a positive number (latents are "
                          f"kept within |z| <= T), got {truncation!r}; leave it out (None) "
                          "for no truncation. Typical values are 0.25 to 2.")
    return t


def truncation_space(module: object) -> str:
    """Where ``truncation`` acts for ``module``: "z" unless it says "w" (style-based)."""
    return getattr(module, "truncation_space", "z")


def truncate_latents(z: torch.Tensor, truncation: float) -> torch.Tensor:
    """Map standard-normal draws ``z`` to the normal truncated to ``[-t, t]``, exactly.

    Inverse CDF in float64: ``u = Phi(z)`` is U(0, 1), so ``Phi(-t) + (Phi(t) - Phi(-t)) u``
    is uniform on ``(Phi(-t), Phi(t))`` and its ``ndtri`` is truncated normal. It is
    evaluated in the lower tail (odd symmetry) so no precision is lost near 1. The map is
    monotone in ``z`` and in ``t``: every coordinate shrinks towards 0 as ``t`` falls.
    """
    t = check_truncation(truncation)
    assert t is not None
    x = z.double()
    p = torch.special.ndtr(torch.tensor(-t, dtype=torch.float64, device=z.device))
    u = p + (1 - 2 * p) * torch.special.ndtr(-x.abs())  # in (Phi(-t), 1/2]
    out = (-torch.special.ndtri(u)).clamp(0, t).copysign(x).to(z.dtype)
    bound = torch.tensor(t, dtype=z.dtype, device=z.device)
    if bound.item() > t:  # the threshold rounded up in z's dtype: stay inside it
        bound = torch.nextafter(bound, torch.zeros_like(bound))
    return out.clamp(-bound, bound)


class Generator(nn.Module):
    """Base class: ``forward(z, labels=None)`` maps latents (and labels) to samples."""

    z_dim: int
    num_classes: int | None
    sample_shape: tuple[int, ...]
    kind: str
    # where ``truncation`` acts: "z" (a threshold on the latents, drawn by sample_latents)
    # or "w" (psi towards w_avg, applied by a style-based forward)
    truncation_space: ClassVar[str] = "z"

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None,
                       truncation: float | None = None) -> torch.Tensor:
        """Latents of shape (n, z_dim): N(0, 1), or with ``truncation=t`` the standard
        normal truncated to ``|z_i| <= t`` (the BigGAN truncation trick, z-space).

        Truncated draws use the same random numbers as untruncated ones (see
        :func:`truncate_latents`), so a seed gives the same latents shrunk towards 0.
        ``truncation`` means what the generator class makes of it: a style-based model
        overrides this method (drawing plain z) and applies its psi in W space itself.
        """
        t = check_truncation(truncation)  # before any draw
        z = torch.randn(n, self.z_dim, generator=generator, device=device)
        return z if t is None else truncate_latents(z, t)

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
