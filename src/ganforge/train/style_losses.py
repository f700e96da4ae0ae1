"""Regularizers of style-based generators (StyleGAN2, Karras et al. 2020).

:func:`path_length_penalty`: a fixed-size step in W should change the image by a fixed
amount, whatever the direction or the point. With ``y`` random images (pixel intensities
N(0, 1/(H W))), the per-sample length ``|J_w^T y|`` (J the Jacobian of the synthesis
network at w) is pushed towards its running mean ``a``: ``E (|J_w^T y| - a)^2``. The
gradient ``J_w^T y`` comes from one backward pass of ``<g(w), y>`` (no explicit Jacobian).
The caller weighs the penalty (the paper: 2, lazily every 4 steps, times the interval).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def path_length_penalty(G: nn.Module | Callable[[torch.Tensor], torch.Tensor],
                        ws: torch.Tensor, pl_mean: torch.Tensor | float,
                        decay: float = 0.01, generator: torch.Generator | None = None,
                        noise: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """The path-length penalty of ``G`` at ``ws`` and the updated running mean length.

    ``G``: a generator with a ``synthesis(ws)`` network, or any callable ws -> images.
    ``ws``: (N, num_ws, w_dim) or (N, w_dim); if it does not require grad it is treated
    as a leaf (so only the synthesis network is regularized; pass ws straight from
    ``G.mapping`` to regularize the mapping network too, as the paper does).
    ``pl_mean``: the running mean of the lengths; it moves ``decay`` of the way to this
    batch's mean (0.01 in the paper) before the penalty is taken. ``generator`` draws the
    random images ``y``, unless ``noise`` (shaped like the images) is given. Returns
    ``(penalty, new_pl_mean)``; the mean is detached.
    """
    synthesis = getattr(G, "synthesis", G)
    if not ws.requires_grad:
        ws = ws.detach().requires_grad_(True)
    img = synthesis(ws)
    if noise is not None:
        y = noise.to(img.device, img.dtype)
    elif generator is None:
        y = torch.randn_like(img)
    else:
        y = torch.randn(img.shape, generator=generator, dtype=img.dtype,
                        device=generator.device).to(img.device)
    y = y / math.sqrt(img.shape[2] * img.shape[3] if img.dim() == 4 else img[0].numel())
    (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
    sq = grad.square().sum(dim=-1)
    lengths = (sq.mean(dim=1) if sq.dim() > 1 else sq).sqrt()
    mean = torch.as_tensor(pl_mean, dtype=lengths.dtype, device=lengths.device)
    new_mean = (mean + decay * (lengths.detach().mean() - mean)).detach()
    return (lengths - new_mean).square().mean(), new_mean
