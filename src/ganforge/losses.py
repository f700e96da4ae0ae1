"""Adversarial objectives and regularizers as small functions of logits and tensors.

Each objective gives the discriminator loss from real/fake logits and the generator
loss from fake logits (the relativistic pairing objective also from the real logits of a
batch of the same size); all return scalar means.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Logits = torch.Tensor


def d_loss(kind: str, real: Logits, fake: Logits) -> torch.Tensor:
    """Discriminator loss for objective ``kind``."""
    if kind in ("minimax", "nonsaturating"):  # -log D(x) - log(1 - D(G(z)))
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "lsgan":  # Mao et al.: a=0 (fake), b=1 (real)
        return 0.5 * ((real - 1).square().mean() + fake.square().mean())
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "rpgan":  # -log sigmoid(D(x_i) - D(G(z_i))), real i paired with fake i
        return F.softplus(fake - real).mean()
    raise ValueError(f"unknown objective '{kind}'")


def g_loss(kind: str, fake: Logits, real: Logits | None = None) -> torch.Tensor:
    """Generator loss for objective ``kind``; ``rpgan`` also needs the (detached) logits
    of a real batch of the same size, paired element by element with ``fake``."""
    if kind == "minimax":  # minimise log(1 - D(G(z))) (saturating)
        return -F.softplus(fake).mean()
    if kind == "nonsaturating":  # minimise -log D(G(z))
        return F.softplus(-fake).mean()
    if kind == "lsgan":  # c=1
        return 0.5 * (fake - 1).square().mean()
    if kind in ("wgan-gp", "hinge"):
        return -fake.mean()
    if kind == "rpgan":  # the pairing reversed: -log sigmoid(D(G(z_i)) - D(x_i))
        if real is None:
            raise ValueError("the rpgan generator loss needs the real logits")
        return F.softplus(real - fake).mean()
    raise ValueError(f"unknown objective '{kind}'")


def mutation_loss(kind: str, fake: Logits) -> torch.Tensor:
    """E-GAN's generator mutations (Wang et al., 2019) on D's probabilities sigma(logits).

    minimax: 1/2 E log(1 - D(G(z))); nonsaturating (the paper's heuristic):
    -1/2 E log D(G(z)); lsgan: E (D(G(z)) - 1)^2.
    """
    if kind == "minimax":
        return -0.5 * F.softplus(fake).mean()
    if kind == "nonsaturating":
        return 0.5 * F.softplus(-fake).mean()
    if kind == "lsgan":
        return (torch.sigmoid(fake) - 1).square().mean()
    raise ValueError(f"unknown mutation '{kind}'")


def r1_penalty(real_logits: Logits, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al., 2018): E ||grad_x D(x)||^2 on real data (needs real.requires_grad).

    Multiply by gamma / 2 for the usual weighting. The same penalty on generated samples
    is R2 (as R3GAN pairs them with the relativistic loss).
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def interpolates(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Points on the lines between real and fake samples, as WGAN-GP judges them."""
    return (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)


def unit_gradient_penalty(logits: Logits, x_hat: torch.Tensor) -> torch.Tensor:
    """E (||grad D(x_hat)|| - 1)^2, from the critic's logits on ``x_hat``."""
    (grad,) = torch.autograd.grad(logits.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def gradient_penalty(critic: Callable[[torch.Tensor], Logits], real: torch.Tensor,
                     fake: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al., 2017): E (||grad D(x_hat)|| - 1)^2 on random interpolates.

    ``alpha`` (N, 1, ...) mixes real and fake; uniform random when not given.
    """
    if alpha is None:
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        alpha = torch.rand(shape, device=real.device, dtype=real.dtype)
    x_hat = interpolates(real, fake, alpha)
    return unit_gradient_penalty(critic(x_hat), x_hat)


def orthogonal_penalty(weights: list[torch.Tensor]) -> torch.Tensor:
    """BigGAN's orthogonal regularization (Brock et al., 2019):
    sum over weights of ||W W^T * (1 - I)||_F^2, W flattened to (out, -1).

    Only the filters' cosine similarities are pushed to 0; their norms stay free.
    """
    total = torch.zeros((), device=weights[0].device if weights else None)
    for w in weights:
        m = w.flatten(1)
        gram = m @ m.T
        total = total + gram.square().sum() - gram.diagonal().square().sum()
    return total
