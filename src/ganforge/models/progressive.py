"""Progressive growing (Karras et al., 2018, ProGAN), as an option of a network pair.

Both networks are built for the full resolution and hold a level of detail ``lod``
(a buffer, so it is checkpointed, copied to the EMA generator and exported): at
``lod = k`` they work at ``resolution / 2**k`` and skip every layer above it; a
fractional ``lod = k + f`` is a fade-in, in which the newest resolution's output (G) or
input path (D) is blended with the previous one's by ``1 - f``. G always returns
full-size images (nearest-neighbour upscaled from the working resolution), so sampling,
metrics and data need no special case.

The schedule, :func:`lod_at`, counts images shown: ``phase_kimg`` thousand images at the
start resolution, then for each next resolution a fade-in of ``phase_kimg`` and a
stabilization of ``phase_kimg``. Training recipes call :func:`set_lod` on G and D before
every step (see ``GANRecipe._begin_step``), so the lod is a function of the step alone
and resume is exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def lod_at(images: float, resolution: int, start_resolution: int, phase_kimg: float) -> float:
    """The level of detail after ``images`` images: ``log2(resolution / start)`` during
    the first phase, then one fade-in (linear) and one stable phase per doubling; 0 at the
    end."""
    max_lod = math.log2(resolution / start_resolution)
    phase = images / (phase_kimg * 1000.0)
    if phase < 1.0:
        return max_lod
    done, within = divmod(phase - 1.0, 2.0)
    return max(max_lod - done - min(within, 1.0), 0.0)


class Progressive(nn.Module):
    """Base of a growing network: its ``lod`` buffer and the resolutions it implies."""

    def __init__(self, resolution: int, start_resolution: int, grows: bool,
                 phase_kimg: float = 600.0) -> None:
        super().__init__()
        self.resolution, self.grows, self.phase_kimg = resolution, grows, phase_kimg
        self.start_resolution = start_resolution if grows else resolution
        self.max_lod = math.log2(resolution / self.start_resolution)
        self.register_buffer("lod", torch.tensor(self.max_lod if grows else 0.0))

    def resolutions(self) -> list[int]:
        """Resolutions the network can output (G) or take in (D): start .. full."""
        r, out = self.start_resolution, []
        while r <= self.resolution:
            out.append(r)
            r *= 2
        return out

    def scheduled_lod(self, images: float) -> float:
        """The level of detail this network's schedule gives after ``images`` images."""
        if not self.grows:
            return 0.0
        return lod_at(images, self.resolution, self.start_resolution, self.phase_kimg)

    def level(self) -> tuple[int, float]:
        """(working resolution, fade fraction f in [0, 1)) at the current lod. Reading the
        lod of a growing network is a host sync on a GPU (one per forward)."""
        if not self.grows:
            return self.resolution, 0.0
        lod = min(max(float(self.lod), 0.0), self.max_lod)
        k = math.floor(lod)
        return self.resolution >> k, lod - k


def fade_images(x: torch.Tensor, fade: float) -> torch.Tensor:
    """ProGAN's image fade: ``lerp(x, upscale(downscale(x)), fade)`` (box filter, nearest
    upscaling); the identity at ``fade`` 0."""
    if fade <= 0:
        return x
    low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
    return torch.lerp(x, low, fade)


def fade_reals(x: torch.Tensor, net: Progressive) -> torch.Tensor:
    """Full-size real images as G's output looks at ``net``'s level: box-downscaled to
    the working resolution, faded like G's blend during a fade-in, nearest-upscaled back
    (differentiable, so R1 can be taken w.r.t. ``x``)."""
    top, fade = net.level()
    if top == net.resolution and fade == 0:
        return x
    factor = net.resolution // top
    small = fade_images(F.avg_pool2d(x, factor) if factor > 1 else x, fade)
    return F.interpolate(small, scale_factor=factor, mode="nearest") if factor > 1 else small


def set_lod(lod: float, *modules: nn.Module) -> None:
    """Set the level of detail of every growing network inside ``modules``."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, Progressive):
                m.lod.fill_(lod)


def growing(module: nn.Module) -> Progressive | None:
    """The first network inside ``module`` that grows (some of its layers then sit
    unused at times), or None."""
    return next((m for m in module.modules() if isinstance(m, Progressive) and m.grows), None)
