"""GAN inversion: find the latent whose image best explains a target (projection),
a low-resolution image (PULSE-style super-resolution) or the known pixels of an image
(inpainting).

One optimiser serves all three. For every target ``t`` a latent ``l`` is optimised with
Adam to minimise, per image,

    pixel_weight * masked_mean((degrade(G(l)) - t)^2)
        + feature_weight * |f(G(l)) - f(t)|^2 / |f(t)|^2        (with ``features``)
        + noise_regularize * noise autocorrelation               (with ``optimize_noise``)

``degrade`` maps a generated image to the space of the observation (identity for
projection, area downscaling for super-resolution) and ``mask`` keeps only the known
pixels. Latent spaces:

- ``z``: any generator. With ``sphere=True`` z is kept on the sphere of radius
  sqrt(z_dim) after every step, as PULSE (Menon et al., 2020) does: the Gaussian prior's
  mass lies near that sphere, so the search stays among latents G was trained on.
- ``w`` / ``w+`` (style-based generators: ``mapping`` + ``synthesis``): one w for all
  layers, or one per style input; the StyleGAN2 projector's recipe (Karras et al., 2020):
  start from the average w, add Gaussian noise of ``w_noise * std(w)`` to w that ramps
  to zero over the first ``noise_ramp`` of the steps, learning rate ramped up over the
  first ``lr_rampup`` and down (cosine) over the last ``lr_rampdown``; optionally the
  per-layer noise maps are optimised too, regularised towards white noise (their
  autocorrelation at every scale pushed to 0) and renormalised after each step.

Errors are reported per image on what was matched (all pixels, the downscaled image or
the known pixels), as MSE and PSNR with images in [-1, 1] (peak-to-peak range 2:
``PSNR = 10 log10(4 / MSE)``), after clamping the reconstruction to [-1, 1] as a saved
image would be.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.apps.latent_search import best_of_restarts, progress_bar
from ganforge.errors import ConfigError, DataError
from ganforge.generator import expand_labels
from ganforge.latent.interpolate import is_style_based, model_name, module_of
from ganforge.nn.style import NoiseInjection

Space = Literal["z", "w", "w+"]
SPACES: tuple[str, ...] = ("z", "w", "w+")
Degrade = Callable[[torch.Tensor], torch.Tensor]
LabelsArg = int | Sequence[int] | torch.Tensor | None
FEATURE_NAMES = ("mnist", "digits")
W_STATS_SAMPLES = 2000  # latents mapped to estimate the mean and spread of w


@dataclass
class ProjectionResult:
    """What a projection found, per target (all tensors on the CPU).

    ``latents``: (N, z_dim) in Z, (N, w_dim) in W, (N, num_ws, w_dim) in W+.
    ``reconstruction``: G(latents) clamped to [-1, 1]; ``completed``: for inpainting, the
    reconstruction with the known pixels pasted back (else None).
    ``mse`` / ``psnr``: final error on what was matched (all pixels; the downscaled image
    for super-resolution; the known pixels for inpainting); ``initial_mse``: the same
    error of the starting latent. ``history``: (steps, N) loss of every step.
    ``noise``: the optimised noise maps (N, 1, r, r) by layer name, if any.
    ``tolerance`` / ``within_tolerance``: super-resolution's acceptance test
    ``mse <= tolerance`` (None otherwise).
    """

    latents: torch.Tensor
    space: str
    reconstruction: torch.Tensor
    mse: torch.Tensor
    psnr: torch.Tensor
    initial_mse: torch.Tensor
    history: torch.Tensor
    labels: torch.Tensor | None = None
    noise: dict[str, torch.Tensor] | None = None
    completed: torch.Tensor | None = None
    tolerance: float | None = None
    within_tolerance: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def images(self) -> torch.Tensor:
        """The result to show: the completed image (inpainting) or the reconstruction."""
        return self.completed if self.completed is not None else self.reconstruction

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON: per-image and mean errors plus the settings."""
        out: dict[str, Any] = {
            "space": self.space,
            "n": int(self.mse.numel()),
            "mean_mse": float(self.mse.mean()),
            "mean_psnr": float(self.psnr.mean()),
            "mean_initial_mse": float(self.initial_mse.mean()),
            "mse": [float(v) for v in self.mse],
            "psnr": [float(v) for v in self.psnr],
            "initial_mse": [float(v) for v in self.initial_mse],
        }
        if self.tolerance is not None and self.within_tolerance is not None:
            out["tolerance"] = self.tolerance
            out["within_tolerance"] = [bool(v) for v in self.within_tolerance]
            out["n_within_tolerance"] = int(self.within_tolerance.sum())
        if self.labels is not None:
            out["labels"] = [int(v) for v in self.labels]
        return {**out, "meta": self.meta}


# ---------------------------------------------------------------- helpers


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of an MSE between images in [-1, 1] (peak-to-peak range 2)."""
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def downscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Area (average-pool) downscaling by an integer ``factor``: the operator
    super-resolution inverts; use it to make the low-resolution inputs too."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"The downscaling factor must be a positive integer, got "
                          f"{factor!r}.")
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise DataError(f"Images of {x.shape[-2]}x{x.shape[-1]} px cannot be downscaled by "
                        f"{factor}: the size must be a multiple of the factor.")
    return x if factor == 1 else F.avg_pool2d(x, factor)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@contextmanager
def _frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; both restored after."""
    mods = [m for m in modules if m is not None]
    flags = [[p.requires_grad for p in m.parameters()] for m in mods]
    modes = [m.training for m in mods]
    try:
        for m in mods:
            m.eval().requires_grad_(False)
        yield
    finally:
        for m, fl, mode in zip(mods, flags, modes, strict=True):
            for p, f in zip(m.parameters(), fl, strict=True):
                p.requires_grad_(f)
            m.train(mode)


def noise_layers(module: nn.Module) -> dict[str, NoiseInjection]:
    """The noise inputs of a style-based generator, by module name."""
    return {n: m for n, m in module.named_modules() if isinstance(m, NoiseInjection)}


@contextmanager
def _noise_maps(module: nn.Module, noise: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Temporarily use per-sample ``noise`` maps (N, 1, r, r) as the generator's
    constant noise (``noise_mode='const'``); the saved buffers are restored after."""
    if not noise:
        yield
        return
    layers = noise_layers(module)
    saved = {n: layers[n].noise_const for n in noise}
    try:
        for n, t in noise.items():
            layers[n].noise_const = t
        yield
    finally:
        for n, t in saved.items():
            layers[n].noise_const = t


def render(G: Any, latents: torch.Tensor, space: Space = "z",
           labels: torch.Tensor | None = None,
           noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """G's output for ``latents`` of ``space`` (as in :class:`ProjectionResult`), with
    optional per-sample noise maps; differentiable, on G's device."""
    module = module_of(G)
    dev = _device(module)
    latents = latents.to(dev)
    labels = None if labels is None else labels.to(dev)
    with _noise_maps(module, None if noise is None
                     else {k: v.to(dev) for k, v in noise.items()}):
        if space == "z":
            if is_style_based(module):
                return module.synthesis(module.mapping(latents, labels), noise_mode="const")
            return module(latents, labels)
        ws = latents.unsqueeze(1).expand(-1, module.num_ws, -1) if space == "w" else latents
        return module.synthesis(ws, noise_mode="const")


def _check_space(space: str, module: nn.Module, name: str) -> None:
    if space not in SPACES:
        raise ConfigError(f"Unknown latent space {space!r}; choose one of z, w or w+.")
    if space != "z" and not is_style_based(module):
        raise ConfigError(f"Space {space!r} needs a style-based generator (one with a "
                          f"mapping and a synthesis network, e.g. stylegan2); '{name}' has "
                          "only z. Use space='z' (--space z).")


def _labels(module: nn.Module, n: int, labels: LabelsArg) -> torch.Tensor | None:
    """The class of every target: required for a conditional generator; one label, or a
    list whose length divides ``n`` (tiled over the targets)."""
    return expand_labels(getattr(module, "num_classes", None), n, labels,
                         default="required", required_hint="give the class of every "
                         "target (labels=..., --labels 3 or 0,1,2; a single class or a "
                         "list tiled over the targets).", whole=True)


def _check_target(target: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(target, torch.Tensor):
        raise DataError(f"The {what} must be a float tensor in [-1, 1], got "
                        f"{type(target).__name__}.")
    if not target.is_floating_point():
        raise DataError(f"The {what} is a {target.dtype} tensor; give floats in [-1, 1] "
                        "(uint8 pixels: x / 127.5 - 1).")
    if target.numel() == 0:
        raise DataError(f"The {what} is empty; give at least one image.")
    if not bool(torch.isfinite(target).all()):
        raise DataError(f"The {what} holds NaN or infinite values.")
    lo, hi = float(target.min()), float(target.max())
    if lo < -1.01 or hi > 1.01:
        raise DataError(f"The {what} has values in [{lo:.3g}, {hi:.3g}], outside [-1, 1]; "
                        "scale images to [-1, 1] (pixels p in [0, 255]: p / 127.5 - 1).")
    return target.float()


def _check_mask(mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise DataError(f"The mask must be a tensor, got {type(mask).__name__}.")
    m = mask.float()
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]
    n, c, h, w = target.shape
    ok = (m.dim() == 4 and m.shape[0] in (1, n) and m.shape[1] in (1, c)
          and tuple(m.shape[2:]) == (h, w))
    if not ok:
        raise DataError(f"The mask has shape {tuple(mask.shape)} but the image is "
                        f"{tuple(target.shape)}; give a mask of shape (H, W) = ({h}, {w}), "
                        f"(N, H, W) or (N or 1, 1 or {c}, H, W), 1 = known pixel, 0 = "
                        "missing.")
    if not bool(((m >= 0) & (m <= 1)).all()):
        raise DataError("The mask must hold values in [0, 1] (1 = known, 0 = missing).")
    m = m.expand(n, c, h, w).contiguous()
    empty = (m.flatten(1).sum(1) == 0).nonzero().flatten()
    if len(empty):
        raise DataError(f"The mask marks no pixel as known for target(s) "
                        f"{empty.tolist()[:10]}; nothing can be matched there.")
    return m


# ---------------------------------------------------------------- feature loss


def _gray32(x: torch.Tensor) -> torch.Tensor:
    """Differentiable version of the classifiers' preprocessing: luma (alpha over white),
    bilinear resize to 32x32; (N, 1, 32, 32) in [-1, 1]."""
    c = x.shape[1]
    g = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3] if c >= 3 else x[:, 0:1]
    if c in (2, 4):
        a = (x[:, -1:] + 1) / 2
        g = g * a + (1 - a)
    if g.shape[-2:] != (32, 32):
        g = F.interpolate(g, size=(32, 32), mode="bilinear", align_corners=False,
                          antialias=g.shape[-1] > 32)
    return g


class FeatureLoss:
    """Relative squared distance between domain-classifier features (``mnist`` or
    ``digits``, penultimate layer): ``|f(x) - f(t)|^2 / |f(t)|^2`` per image."""

    def __init__(self, name: str, device: torch.device) -> None:
        from ganforge.metrics.classifier import load_classifier

        if name not in FEATURE_NAMES:
            raise ConfigError(f"Unknown features {name!r} for the feature loss; choose "
                              f"{' or '.join(FEATURE_NAMES)} (or none).")
        self.name = name
        self.net = load_classifier(name, device=device)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_gray32(x))[0]

    def __call__(self, x: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        d = (self.features(x) - target_features).square().sum(1)
        return d / target_features.square().sum(1).clamp_min(1e-8)


# ---------------------------------------------------------------- the optimiser


def _lr_factor(t: float, rampup: float, rampdown: float) -> float:
    """StyleGAN2 projector schedule at progress ``t`` in [0, 1]: linear ramp-up over the
    first ``rampup``, cosine ramp-down over the last ``rampdown``."""
    down = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    factor = 0.5 - 0.5 * math.cos(down * math.pi)
    return factor * (min(1.0, t / rampup) if rampup > 0 else 1.0)


def _noise_reg(noise: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-sample autocorrelation penalty of noise maps at every scale down to 8x8."""
    total: torch.Tensor | int = 0
    for n in noise.values():
        while True:
            total = total + (n * n.roll(1, dims=3)).mean((1, 2, 3)).square() \
                + (n * n.roll(1, dims=2)).mean((1, 2, 3)).square()
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    assert isinstance(total, torch.Tensor)
    return total


def _sphere(z: torch.Tensor) -> torch.Tensor:
    return z * math.sqrt(z.shape[1]) / z.norm(dim=1, keepdim=True).clamp_min(1e-8)


@dataclass
class _Settings:
    space: str
    steps: int
    lr: float
    pixel_weight: float
    feature_weight: float
    optimize_noise: bool
    noise_regularize: float
    w_noise: float
    noise_ramp: float
    lr_rampup: float
    lr_rampdown: float
    sphere: bool
    restarts: int


@torch.no_grad()
def _w_stats(module: nn.Module, labels: torch.Tensor | None, rng: torch.Generator
             ) -> tuple[torch.Tensor, float, torch.Tensor | None, dict[str, Any]]:
    """The starting w (the model's ``w_avg``, or the mean of mapped samples when the
    model never tracked one), the spread of w and, if conditional, a start per class."""
    dev = _device(module)
    z = torch.randn(W_STATS_SAMPLES, module.z_dim, generator=rng).to(dev)
    k = getattr(module, "num_classes", None)
    y = None if not k else (torch.arange(W_STATS_SAMPLES) % k).to(dev)
    w = module.mapping(z, y)[:, 0].float()
    buffer = getattr(module.mapping, "w_avg", None)
    tracked = buffer is not None and bool(buffer.abs().sum() > 0)
    w_avg = buffer.float() if tracked else w.mean(0)
    std = float((w - w_avg).square().sum(1).mean().sqrt())
    per_class = None
    if y is not None and labels is not None:
        means = torch.stack([w[y == c].mean(0) for c in range(int(k))])
        per_class = means[labels.to(dev)]
    info = {"w_start": "per-class mean of mapped samples" if per_class is not None
            else ("w_avg" if tracked else "mean of mapped samples"),
            "w_std": std}
    return w_avg, std, per_class, info


def _start(module: nn.Module, s: _Settings, n: int, labels: torch.Tensor | None,
           rng: torch.Generator, w_stats: tuple[Any, ...] | None) -> torch.Tensor:
    """Starting latents for ``s.restarts * n`` searches (restart-major)."""
    dev = _device(module)
    reps = s.restarts
    if s.space == "z":
        z = torch.randn(reps * n, module.z_dim, generator=rng).to(dev)
        return _sphere(z) if s.sphere else z
    assert w_stats is not None
    w_avg, _, per_class, _ = w_stats
    first = per_class if per_class is not None else w_avg.expand(n, -1)
    starts = [first]
    if reps > 1:  # further restarts: mapped random latents of the same classes
        z = torch.randn((reps - 1) * n, module.z_dim, generator=rng).to(dev)
        y = None if labels is None else labels.repeat(reps - 1)
        with torch.no_grad():
            starts.append(module.mapping(z, y)[:, 0].float())
    w = torch.cat(starts)
    return w.unsqueeze(1).repeat(1, module.num_ws, 1) if s.space == "w+" else w


def _batch(G: Any, module: nn.Module, target: torch.Tensor, mask: torch.Tensor | None,
           labels: torch.Tensor | None, degrade: Degrade | None, feats: FeatureLoss | None,
           s: _Settings, rng: torch.Generator, w_stats: tuple[Any, ...] | None,
           tick: Callable[[int], object]) -> dict[str, Any]:
    """Optimise one batch of targets (``s.restarts`` searches each; best one kept)."""
    n, reps = target.shape[0], s.restarts
    dev = _device(module)
    t = target.to(dev).repeat(reps, *([1] * (target.dim() - 1)))
    m = None if mask is None else mask.to(dev).repeat(reps, 1, 1, 1)
    y = None if labels is None else labels.to(dev).repeat(reps)
    with torch.no_grad():
        tf = None if feats is None else feats.features(t)
    lat = _start(module, s, n, labels, rng, w_stats).detach().requires_grad_(True)
    params = [lat]
    noise: dict[str, torch.Tensor] | None = None
    if s.optimize_noise:
        noise = {}
        for name, layer in noise_layers(module).items():
            r = layer.noise_const.shape[-1]
            noise[name] = torch.randn(reps * n, 1, r, r, generator=rng).to(dev) \
                .requires_grad_(True)
        params += list(noise.values())
    opt = torch.optim.Adam(params, lr=s.lr, betas=(0.9, 0.999))
    w_std = 0.0 if w_stats is None else w_stats[1]

    def observe(x: torch.Tensor) -> torch.Tensor:
        return degrade(x) if degrade is not None else x

    def data_error(x: torch.Tensor) -> torch.Tensor:
        d = (observe(x) - t).square()
        if m is None:
            return d.flatten(1).mean(1)
        return (d * m).flatten(1).sum(1) / m.flatten(1).sum(1)

    def objective(x: torch.Tensor) -> torch.Tensor:
        loss = s.pixel_weight * data_error(x)
        if feats is not None and tf is not None and s.feature_weight > 0:
            loss = loss + s.feature_weight * feats(observe(x), tf)
        return loss

    def generate(latent: torch.Tensor) -> torch.Tensor:
        return render(module, latent, s.space, y, noise)  # type: ignore[arg-type]

    with torch.no_grad():
        initial = data_error(generate(lat).clamp(-1, 1))
    history = []
    for step in range(s.steps):
        progress = step / max(1, s.steps)
        for group in opt.param_groups:
            group["lr"] = s.lr * _lr_factor(progress, s.lr_rampup, s.lr_rampdown)
        latent = lat
        if s.space != "z" and s.w_noise > 0 and s.noise_ramp > 0:
            scale = w_std * s.w_noise * max(0.0, 1.0 - progress / s.noise_ramp) ** 2
            if scale > 0:
                latent = lat + torch.randn(lat.shape, generator=rng).to(dev) * scale
        loss = objective(generate(latent))
        history.append(loss.detach().float().cpu())
        if noise is not None and s.noise_regularize > 0:
            loss = loss + s.noise_regularize * _noise_reg(noise)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # independent samples (eval mode): per-sample gradients
        opt.step()
        with torch.no_grad():
            if s.space == "z" and s.sphere:
                lat.copy_(_sphere(lat))
            if noise is not None:
                for v in noise.values():
                    v.sub_(v.mean((1, 2, 3), keepdim=True))
                    v.div_(v.square().mean((1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8))
        tick(1)
    with torch.no_grad():
        recon = generate(lat).clamp(-1, 1)
        final = data_error(recon)
    hist = torch.stack(history) if history else torch.empty(0, reps * n)
    keys = [lat.detach(), recon, initial, hist.T.contiguous()]
    names = sorted(noise) if noise is not None else []
    keys += [noise[k].detach() for k in names] if noise is not None else []
    best, picked = best_of_restarts(final, n, *keys)
    out = {"mse": best.float().cpu(), "latents": picked[0].float().cpu(),
           "reconstruction": picked[1].float().cpu(),
           "initial": picked[2].float().cpu(), "history": picked[3].T.contiguous()}
    out["noise"] = {k: v.float().cpu() for k, v in zip(names, picked[4:], strict=True)}
    return out


def project(G: Any, target: torch.Tensor, *, space: Space = "z",
            labels: LabelsArg = None, degrade: Degrade | None = None,
            mask: torch.Tensor | None = None, optimize_noise: bool = False,
            steps: int = 500, lr: float | None = None, pixel_weight: float = 1.0,
            feature_weight: float = 1.0, features: str | None = None,
            restarts: int = 1, sphere: bool = False, w_noise: float = 0.05,
            noise_ramp: float = 0.75, lr_rampup: float = 0.05, lr_rampdown: float = 0.25,
            noise_regularize: float = 1e5, batch_size: int = 64, seed: int = 0,
            progress: bool = True, desc: str = "projection") -> ProjectionResult:
    """Invert ``G`` (a :func:`ganforge.load` result or a generator module) on ``target``
    (N, C, H, W) in [-1, 1]: the latents whose images match it best.

    ``space``: ``z`` (any generator), ``w`` or ``w+`` (style-based). ``degrade``: a
    differentiable map from G's images to the target's space (e.g. :func:`downscale`);
    ``mask`` (broadcastable to the target; 1 = known): match only those pixels.
    ``features`` (``mnist`` / ``digits``): add the domain classifier's feature distance,
    weighted by ``feature_weight``. ``lr`` defaults to 0.1 in W / W+ and 0.05 in Z.
    ``restarts``: independent starts per target (the best final error wins); ``sphere``
    keeps z on the sphere of radius sqrt(z_dim) (PULSE). ``optimize_noise``: also fit the
    per-layer noise maps of a style-based G (regularised by ``noise_regularize``).
    Conditional generators need ``labels`` (one, or one per target). Seeded: the same
    inputs and settings give the same result. See the module docstring for the loss.
    """
    module = module_of(G)
    name = model_name(G)
    _check_space(space, module, name)
    if getattr(module, "kind", "image") != "image":
        raise ConfigError(f"Projection matches images; '{name}' makes points. Project the "
                          "run of an image model.")
    if steps < 0 or restarts < 1 or batch_size < 1:
        raise ConfigError(f"Need steps >= 0, restarts >= 1 and batch_size >= 1; got "
                          f"{steps}, {restarts}, {batch_size}.")
    if pixel_weight < 0 or feature_weight < 0 or noise_regularize < 0:
        raise ConfigError("pixel_weight, feature_weight and noise_regularize must be >= 0.")
    if lr is not None and not lr > 0:
        raise ConfigError(f"The learning rate must be > 0, got {lr}.")
    if optimize_noise and space == "z" and not is_style_based(module):
        raise ConfigError(f"optimize_noise needs a style-based generator with noise inputs; "
                          f"'{name}' has none. Drop optimize_noise (--optimize-noise).")
    if sphere and space != "z":
        raise ConfigError("sphere=True (PULSE's constraint) applies to Z space; use "
                          "space='z' or drop sphere.")
    target = _check_target(target, "target")
    shape = tuple(getattr(module, "sample_shape", target.shape[1:]))
    expected = shape
    if degrade is not None:
        with torch.no_grad():
            expected = tuple(degrade(torch.zeros(1, *shape, device=_device(module))).shape[1:])
    if tuple(target.shape[1:]) != expected:
        how = (" after the degradation" if degrade is not None else "")
        raise DataError(f"The target has shape {tuple(target.shape[1:])} per image but this "
                        f"generator's images{how} are {expected}; bring the targets to that "
                        "size and channel count (the CLI does it: ganforge project RUN "
                        "--target ...).")
    if mask is not None:
        if degrade is not None:
            raise ConfigError("Use either a mask or a degradation, not both.")
        mask = _check_mask(mask, target)
    if features is not None and features not in FEATURE_NAMES:
        raise ConfigError(f"Unknown features {features!r}; choose mnist, digits or none.")
    n = target.shape[0]
    y = _labels(module, n, labels)
    s = _Settings(space=space, steps=steps,
                  lr=lr if lr is not None else (0.05 if space == "z" else 0.1),
                  pixel_weight=pixel_weight, feature_weight=feature_weight,
                  optimize_noise=optimize_noise, noise_regularize=noise_regularize,
                  w_noise=w_noise, noise_ramp=noise_ramp, lr_rampup=lr_rampup,
                  lr_rampdown=lr_rampdown, sphere=sphere, restarts=restarts)
    rng = torch.Generator().manual_seed(seed)
    feats = FeatureLoss(features, _device(module)) if features is not None else None
    batches = range(0, n, batch_size)
    bar = progress_bar(len(batches) * steps, desc, progress)
    parts: list[dict[str, Any]] = []
    w_info: dict[str, Any] = {}
    try:
        with _frozen(module, None if feats is None else feats.net):
            w_stats = None
            if space != "z":
                w_stats = _w_stats(module, y, rng)
                w_info = w_stats[3]
            for i in batches:
                sl = slice(i, i + batch_size)
                ws = w_stats
                if w_stats is not None and w_stats[2] is not None:
                    ws = (w_stats[0], w_stats[1], w_stats[2][sl], w_stats[3])
                parts.append(_batch(G, module, target[sl], None if mask is None else mask[sl],
                                    None if y is None else y[sl], degrade, feats, s, rng, ws,
                                    bar.update))
                bar.set_postfix(mse=f"{float(torch.cat([p['mse'] for p in parts]).mean()):.4g}")
    finally:
        bar.close()

    def cat(key: str) -> torch.Tensor:
        return torch.cat([p[key] for p in parts], dim=1 if key == "history" else 0)

    mse = cat("mse")
    noise = ({k: torch.cat([p["noise"][k] for p in parts]) for k in parts[0]["noise"]}
             if optimize_noise else None)
    recon = cat("reconstruction")
    completed = None
    if mask is not None:
        completed = mask * target + (1 - mask) * recon
    meta = {"model": name, "space": space, "steps": steps, "lr": s.lr,
            "pixel_weight": pixel_weight,
            "feature_weight": feature_weight if features else 0.0, "features": features,
            "restarts": restarts, "sphere": sphere, "optimize_noise": optimize_noise,
            "seed": seed, "batch_size": batch_size, "lr_rampup": lr_rampup,
            "lr_rampdown": lr_rampdown,
            **({"w_noise": w_noise, "noise_ramp": noise_ramp, **w_info}
               if space != "z" else {}),
            **({"noise_regularize": noise_regularize} if optimize_noise else {}),
            "matched": "known pixels" if mask is not None else
                       ("degraded image" if degrade is not None else "all pixels"),
            "error": "MSE and PSNR = 10 log10(4 / MSE) on images in [-1, 1]"}
    return ProjectionResult(latents=cat("latents"), space=space, reconstruction=recon,
                            mse=mse, psnr=psnr(mse), initial_mse=cat("initial"),
                            history=cat("history"), labels=y, noise=noise,
                            completed=completed, meta=meta)


def super_resolve(G: Any, low_res: torch.Tensor, factor: int, *, space: Space = "z",
                  sphere: bool | None = None, tolerance: float = 0.01, steps: int = 500,
                  **kwargs: Any) -> ProjectionResult:
    """PULSE-style super-resolution (Menon et al., 2020): the latents whose images,
    area-downscaled by ``factor`` (:func:`downscale`, the operator that should have made
    ``low_res``), match ``low_res`` (N, C, H/factor, W/factor).

    ``result.mse`` is the downscale error; ``within_tolerance`` says where it is at most
    ``tolerance`` (MSE in [-1, 1] units; 0.01 is a PSNR of 26 dB). ``sphere`` (default:
    on in Z space) keeps z on the sphere of radius sqrt(z_dim) as PULSE does. Other
    options as in :func:`project`.
    """
    module = module_of(G)
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"The super-resolution factor must be a positive integer, got "
                          f"{factor!r}.")
    if not tolerance > 0:
        raise ConfigError(f"tolerance must be > 0, got {tolerance}.")
    shape = tuple(getattr(module, "sample_shape", ()))
    if len(shape) != 3:
        raise ConfigError("Super-resolution needs an image generator.")
    if shape[1] % factor or shape[2] % factor:
        raise ConfigError(f"The generator makes {shape[1]}x{shape[2]} images, which a factor "
                          f"of {factor} does not divide; pick a factor that divides "
                          f"{shape[1]} (e.g. 2, 4).")
    want = (shape[0], shape[1] // factor, shape[2] // factor)
    if isinstance(low_res, torch.Tensor) and tuple(low_res.shape[1:]) != want:
        raise DataError(f"The low-resolution input has shape {tuple(low_res.shape[1:])} per "
                        f"image; with factor {factor} this generator ({shape[1]}x{shape[2]}, "
                        f"{shape[0]} channel(s)) needs {want}. Downscale the image by "
                        f"{shape[1] // want[1]} with ganforge.latent.projection.downscale, "
                        "or change --super-resolve.")
    use_sphere = (space == "z") if sphere is None else sphere
    res = project(G, low_res, space=space, sphere=use_sphere, steps=steps,
                  degrade=lambda x: downscale(x, factor), desc="super-resolution", **kwargs)
    res.tolerance = float(tolerance)
    res.within_tolerance = res.mse <= tolerance
    res.meta.update({"task": "super-resolution", "factor": factor, "tolerance": tolerance,
                     "downscale": "average pooling (area)"})
    return res


def inpaint(G: Any, image: torch.Tensor, mask: torch.Tensor, *, paste: bool = True,
            **kwargs: Any) -> ProjectionResult:
    """Fill the missing pixels of ``image`` (N, C, H, W) in [-1, 1]: ``mask`` is 1 where a
    pixel is known, 0 where it is missing ((H, W), (N, H, W) or (N|1, 1|C, H, W)). The
    latents match the known pixels only; ``result.completed`` is the reconstruction with
    the known pixels pasted back (``paste=False``: the plain reconstruction), and
    ``result.mse`` the error on the known pixels. Options as in :func:`project`."""
    kwargs.setdefault("desc", "inpainting")
    res = project(G, image, mask=mask, **kwargs)
    if not paste:
        res.completed = res.reconstruction
    res.meta.update({"task": "inpainting", "paste_known": paste})
    return res


# ---------------------------------------------------------------- inputs and outputs

_RANGE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class Targets:
    """Target images in [-1, 1] at the requested size, their labels (if the source has
    any), their positions in the source and the spec they came from."""

    x: torch.Tensor
    labels: torch.Tensor | None
    index: list[int]
    spec: str


def parse_range(text: str, n: int) -> list[int]:
    """Indices of ``"3"``, ``"0-15"`` (inclusive) or ``"0-3,10,20-22"`` among ``n``."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise ConfigError(f"Index range {part!r} runs backwards; write it as {b}-{a}.")
        out.extend(range(a, b + 1))
    bad = [i for i in out if i >= n]
    if bad:
        raise DataError(f"Index {bad[0]} is out of range: the source holds {n} images "
                        f"(0..{n - 1}).")
    return out


def load_targets(target: str, shape: Sequence[int], split: str | None = None) -> Targets:
    """Images to project from an image file, a folder, an .npz or a data source (digits,
    mnist, mnist:DIR, folder:PATH, npz:PATH), optionally followed by ``:RANGE`` (``0-15``,
    inclusive, or ``0,4,9``). They are converted to ``shape`` = (C, H, W) with the data
    sources' own resizing and channel conversion. MNIST defaults to its test split."""
    from ganforge.data import load_source
    from ganforge.data.spec import parse_spec, spec_for

    c, h, w = (int(v) for v in shape)
    if h != w:
        raise ConfigError(f"Targets are made square; this generator makes {h}x{w} images.")
    text, picks = target.strip(), None
    head, sep, tail = text.rpartition(":")
    if sep and _RANGE.match(tail) and not Path(text).exists():
        text, picks = head, tail
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        from ganforge.data.decode import decode_image
        from ganforge.data.transforms import convert_channels

        try:
            arr = decode_image(path, h)
        except Exception as exc:  # Pillow raises many exception types on bad files
            raise DataError(f"{path} cannot be read as an image ({type(exc).__name__}: "
                            f"{exc}); give a PNG, JPEG or WebP file.") from None
        img = convert_channels(torch.from_numpy(arr.copy()).permute(2, 0, 1)[None], c)
        x, labels, spec = img.float().div(127.5).sub(1.0), None, str(path)
        pick = parse_range(picks, 1) if picks is not None else None
        x = x if pick is None else x[pick]
    else:
        spec = spec_for(text)
        kind, _ = parse_spec(spec)
        if kind in ("csv", "ring", "grid"):
            raise DataError(f"--target {target!r} holds points or rows, not images; give an "
                            "image file, a folder, an .npz of images or an image source.")
        bundle = load_source(spec, resolution=h, channels=c if c in (1, 3, 4) else None,
                             split=split or ("test" if kind == "mnist" else "all"))
        if bundle.kind != "image":
            raise DataError(f"--target {target!r} holds points, not images.")
        # only the picked images are converted to float (a source can be large)
        pick = parse_range(picks, len(bundle)) if picks is not None else None
        x, labels = bundle.batch(torch.as_tensor(pick if pick is not None
                                                 else range(len(bundle))))
    index = pick if pick is not None else list(range(len(x)))
    if tuple(x.shape[1:]) != (c, h, w):
        raise DataError(f"--target {target!r} gives {x.shape[1]}-channel images; this "
                        f"generator makes {c} channel(s). Convert the images first.")
    return Targets(x.contiguous(), labels, index, spec)


def load_mask(path: str | Path, resolution: int) -> torch.Tensor:
    """A mask image (white = known pixel, black = missing) as a (H, W) float tensor of
    0 and 1; it must be ``resolution`` px square, like the generator's images."""
    from PIL import Image

    p = Path(path).expanduser()
    try:
        with Image.open(p) as im:
            gray = im.convert("L")
            size = gray.size
            arr = torch.from_numpy(np.array(gray, dtype=np.float32))
    except FileNotFoundError:
        raise DataError(f"Mask file {p} does not exist; check the path.") from None
    except Exception as exc:  # Pillow raises many exception types on bad files
        raise DataError(f"{p} cannot be read as a mask image ({type(exc).__name__}: {exc}); "
                        "give a PNG with white known pixels and black missing ones.") from None
    if size != (resolution, resolution):
        raise DataError(f"Mask {p} is {size[0]}x{size[1]} px but the generator makes "
                        f"{resolution}x{resolution} images; draw the mask at that size "
                        "(white = known, black = missing).")
    return (arr.view(resolution, resolution) > 127).float()


def _upscale(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="nearest")


def comparison_columns(result: ProjectionResult, target: torch.Tensor,
                       mask: torch.Tensor | None = None,
                       original: torch.Tensor | None = None) -> list[tuple[str, torch.Tensor]]:
    """The columns of a comparison grid, by name: (original high-res), the target (low-res
    ones upscaled, nearest), the masked input, the result, and its downscale for
    super-resolution."""
    size = result.reconstruction.shape[-1]
    cols: list[tuple[str, torch.Tensor]] = []
    if original is not None:
        cols.append(("original", original))
    cols.append(("target", _upscale(target, size)))
    if mask is not None:
        cols.append(("masked input", mask * target + (1 - mask) * -1.0))
        cols.append(("completed", result.images))
    else:
        cols.append(("reconstruction", result.reconstruction))
    factor = result.meta.get("factor")
    if isinstance(factor, int) and factor > 1:
        cols.append(("reconstruction downscaled",
                     _upscale(downscale(result.reconstruction, factor), size)))
    return cols


def save_projection(out: str | Path, result: ProjectionResult, target: torch.Tensor,
                    mask: torch.Tensor | None = None, original: torch.Tensor | None = None,
                    extra_meta: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write a projection into folder ``out``: ``reconstructions/`` (and ``completed/``)
    PNGs, ``comparison.png`` (one row per target), ``latents.safetensors`` (latents,
    labels, noise maps; settings as JSON in the metadata) and ``errors.json``."""
    import json

    from safetensors.torch import save

    from ganforge.checkpoint import atomic_write_bytes, atomic_write_text
    from ganforge.visual import save_grid, save_images

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = {"reconstructions": folder / "reconstructions"}
    save_images(written["reconstructions"], result.reconstruction)
    if result.completed is not None:
        written["completed"] = folder / "completed"
        save_images(written["completed"], result.completed)
    m = None if mask is None else mask.expand_as(target)
    cols = comparison_columns(result, target, m, original)
    grid = torch.stack([c for _, c in cols], 1).flatten(0, 1)
    written["comparison"] = folder / "comparison.png"
    save_grid(written["comparison"], grid, nrow=len(cols))
    meta = {**result.meta, **(extra_meta or {}), "columns": [n for n, _ in cols]}
    tensors = {"latents": result.latents.contiguous()}
    if result.labels is not None:
        tensors["labels"] = result.labels.contiguous()
    for k, v in (result.noise or {}).items():
        tensors[f"noise.{k}"] = v.contiguous()
    written["latents"] = folder / "latents.safetensors"
    atomic_write_bytes(written["latents"], save(tensors, metadata={
        "format": "ganforge.projection/1", "space": result.space,
        "meta": json.dumps(meta)}))
    written["errors"] = folder / "errors.json"
    atomic_write_text(written["errors"], json.dumps({**result.summary(), "meta": meta},
                                                    indent=2) + "\n")
    return written
