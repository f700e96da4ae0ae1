"""AnoGAN latent search (Schlegl et al. 2017): find the z whose G(z) best explains x.

For each input the latent is optimised with Adam for a fixed number of steps to minimise

    (1 - lam) * mean|x - G(z)| + lam * mean|f_D(x) - f_D(G(z))|

(the residual loss plus the discrimination loss on the discriminator's intermediate
features). Both L1 terms are averaged over their elements, so ``lam`` weighs them the
same way at every image size and feature width. The final loss is the anomaly score:
data the generator has learned is reconstructed well, anomalies are not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import Field
from torch import nn
from tqdm.auto import tqdm

from ganforge.config import StrictModel

Features = Callable[[torch.Tensor], torch.Tensor]


class SearchSettings(StrictModel):
    """How the latent search runs."""

    steps: int = Field(100, ge=0, description="Adam steps per input")
    restarts: int = Field(1, ge=1, description="independent starting latents; the best counts")
    lr: float = Field(0.05, gt=0, description="Adam learning rate on z")
    lam: float = Field(0.1, ge=0, le=1, description="weight of the feature (discrimination) "
                       "loss; 1 - lam weighs the pixel/row residual")
    batch_size: int = Field(256, ge=1, description="inputs searched together")
    seed: int = Field(0, description="seed of the starting latents")


@dataclass
class SearchResult:
    """Per input: the final loss (the score), the loss at the start and the best latent."""

    scores: torch.Tensor
    initial: torch.Tensor
    z: torch.Tensor
    labels: torch.Tensor | None = None


def anogan_loss(x: torch.Tensor, fx: torch.Tensor, fake: torch.Tensor, features: Features,
                lam: float) -> torch.Tensor:
    """Per-sample AnoGAN loss of reconstructions ``fake`` of ``x`` (``fx`` = f_D(x))."""
    residual = (x - fake).abs().flatten(1).mean(1)
    if lam == 0:
        return residual
    discrimination = (fx - features(fake)).abs().flatten(1).mean(1)
    return (1 - lam) * residual + lam * discrimination


def progress_bar(total: int, desc: str, progress: bool) -> tqdm:
    """The tqdm bar of a latent optimisation (one tick per optimiser step)."""
    return tqdm(total=total, desc=desc, unit="step", disable=not progress,
                dynamic_ncols=True, mininterval=0.5)


def best_of_restarts(loss: torch.Tensor, n: int, *tensors: torch.Tensor
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Pick, per input, the restart with the lowest ``loss``.

    ``loss`` has ``reps * n`` entries laid out restart-major (restart ``r`` of input ``i``
    at ``r * n + i``, as ``x.repeat(reps, ...)`` makes them); each tensor in ``tensors``
    shares that leading layout. Returns the best losses (n,) and the matching rows.
    """
    reps = loss.shape[0] // n
    best, which = loss.view(reps, n).min(0)
    rows = torch.arange(n, device=loss.device)
    picked = [t.view(reps, n, *t.shape[1:])[which.to(t.device), rows.to(t.device)]
              for t in tensors]
    return best, picked


def _search_batch(G: nn.Module, features: Features, x: torch.Tensor,
                  labels: torch.Tensor | None, cfg: SearchSettings, rng: torch.Generator,
                  tick: Callable[[int], object]) -> tuple[torch.Tensor, ...]:
    """Search one batch with ``cfg.restarts`` latents per input; best restart wins."""
    n, reps = x.shape[0], cfg.restarts
    xr = x.repeat(reps, *([1] * (x.dim() - 1)))
    yr = None if labels is None else labels.repeat(reps)
    with torch.no_grad():
        fx = features(xr)
    z = torch.randn(n * reps, G.z_dim, generator=rng).to(x.device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr)
    with torch.no_grad():
        initial = anogan_loss(xr, fx, G(z, yr), features, cfg.lam)
    for _ in range(cfg.steps):
        loss = anogan_loss(xr, fx, G(z, yr), features, cfg.lam)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # samples are independent (eval mode): per-sample gradients
        opt.step()
        tick(1)
    with torch.no_grad():
        final = anogan_loss(xr, fx, G(z, yr), features, cfg.lam)
    best, (z_best,) = best_of_restarts(final, n, z.detach())
    return best, initial.view(reps, n).min(0).values, z_best


def latent_search(G: nn.Module, features: Features, x: torch.Tensor,
                  labels: torch.Tensor | None = None, settings: SearchSettings | None = None,
                  progress: bool = False) -> SearchResult:
    """AnoGAN search for every row of ``x`` (on G's device; G and the features' network in
    eval mode with frozen weights, as :class:`AnomalyDetector` keeps them).

    Seeded: the same inputs, settings and seed give the same scores.
    """
    cfg = settings or SearchSettings()
    rng = torch.Generator().manual_seed(cfg.seed)
    batches = range(0, x.shape[0], cfg.batch_size)
    bar = progress_bar(len(batches) * cfg.steps, "latent search", progress)
    out: list[tuple[torch.Tensor, ...]] = []
    try:
        for i in batches:
            yb = None if labels is None else labels[i:i + cfg.batch_size]
            out.append(_search_batch(G, features, x[i:i + cfg.batch_size], yb, cfg, rng,
                                     bar.update))
    finally:
        bar.close()
    scores, initial, z = (torch.cat([o[k] for o in out]).cpu() for k in range(3))
    return SearchResult(scores, initial, z, None if labels is None else labels.cpu())
