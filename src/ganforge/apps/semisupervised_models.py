"""Networks, settings and training steps of the semi-supervised GAN (Salimans et al. 2016).

The discriminator is an MLP with weight normalization and Gaussian noise on its input and
hidden layers. It outputs ``K`` class logits; the "fake" logit of the K+1-class model is
fixed at 0, so ``D(x) = Z / (Z + 1)`` with ``Z = sum_k exp(l_k)``. The generator is an MLP
with batch norm and softplus and a sigmoid output. Both work on pixels in [0, 1], flattened.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, ValidationError
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ganforge.config import StrictModel, format_validation_error
from ganforge.errors import ConfigError


class SSLArch(StrictModel):
    """What is needed to rebuild the classifier (stored in the saved file)."""

    in_shape: tuple[PositiveInt, ...] = Field(..., min_length=1, description="(C, H, W)")
    num_classes: int = Field(..., ge=2)
    d_widths: tuple[PositiveInt, ...] = Field((500, 250, 250), min_length=1)
    input_noise: float = Field(0.3, ge=0, description="std of noise on [0, 1] pixels")
    hidden_noise: float = Field(0.5, ge=0, description="std of noise after hidden layers")


class SSLConfig(StrictModel):
    """Training settings. Defaults: the paper's MNIST setup adapted to reach 95% with 100
    labels in ~15 epochs on CPU (narrower D, lr decay, weight averaging; see docs)."""

    d_widths: tuple[PositiveInt, ...] = Field((500, 250, 250), min_length=1,
                                      description="paper: (1000, 500, 250, 250, 250)")
    g_widths: tuple[PositiveInt, ...] = Field((500, 500), min_length=1)
    z_dim: int = Field(100, ge=1)
    input_noise: float = Field(0.3, ge=0)
    hidden_noise: float = Field(0.5, ge=0)
    steps: int = Field(9000, ge=1, description="optimizer steps of D (and of G)")
    batch_size: int = Field(100, ge=2, description="unlabeled, generated and labeled batch")
    lr: float = Field(0.003, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    decay_from: float = Field(0.8, ge=0, le=1, description="fraction of steps after which "
                              "the learning rate decays linearly to 0")
    unsup_weight: float = Field(1.0, ge=0, description="weight of the unsupervised D loss")
    ema: float = Field(0.999, ge=0, lt=1, description="the classifier is an exponential "
                       "moving average of D's weights with this decay (0 = off)")
    init_batch: int = Field(500, ge=0, description="examples for data-dependent "
                            "weight-norm init (0 = off)")
    log_every: int = Field(0, ge=0, description="record losses every N steps (0 = never)")

    def arch(self, in_shape: tuple[int, ...], num_classes: int) -> SSLArch:
        """The discriminator architecture these settings give for this data."""
        return SSLArch(in_shape=in_shape, num_classes=num_classes, d_widths=self.d_widths,
                       input_noise=self.input_noise, hidden_noise=self.hidden_noise)


def validate(model: type[StrictModel], data: dict[str, Any] | StrictModel | None,
             where: str) -> Any:
    """Build a config from a dict (or pass one through), raising ConfigError."""
    if isinstance(data, model):
        return data
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where} must be a dict or {model.__name__}, got "
                          f"{type(data).__name__}.")
    try:
        return model.model_validate(dict(data or {}))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where)
                          + f" Valid keys: {', '.join(model.model_fields)}.") from None


def _noise(h: torch.Tensor, std: float, gen: torch.Generator | None) -> torch.Tensor:
    if gen is None or std == 0:
        return h
    return h + std * torch.randn(h.shape, generator=gen, dtype=h.dtype, device=h.device)


def _wn_linear(n_in: int, n_out: int, std: float = 0.1) -> nn.Linear:
    """Weight-normalized linear layer whose direction starts as N(0, std^2) entries.

    The norm of the direction sets the effective step size of Adam on it: the paper's
    N(0, 0.1^2) init gives rows of norm ~0.1 sqrt(n_in), several times larger (slower,
    steadier) than PyTorch's default uniform init.
    """
    layer = nn.Linear(n_in, n_out)
    nn.init.normal_(layer.weight, 0.0, std)
    nn.init.zeros_(layer.bias)
    return weight_norm(layer)


class SSLDiscriminator(nn.Module):
    """Noisy weight-normalized ReLU MLP with ``K`` class logits (fake logit fixed at 0).

    ``forward(x01, gen)`` takes flattened pixels in [0, 1] and returns ``(logits,
    features)``; features are the last hidden layer's activations (for feature matching).
    Noise is added only when a ``torch.Generator`` is given (training).
    """

    def __init__(self, arch: SSLArch) -> None:
        super().__init__()
        self.arch = arch
        width = 1
        for s in arch.in_shape:
            width *= s
        layers = []
        for w in arch.d_widths:
            layers.append(_wn_linear(width, w))
            width = w
        self.hidden = nn.ModuleList(layers)
        self.head = _wn_linear(width, arch.num_classes)
        for layer in self.hidden:  # hidden gains stay as the data-dependent init sets them
            layer.parametrizations.weight.original0.requires_grad_(False)

    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h = _noise(x, self.arch.input_noise, gen)
        for layer in self.hidden:
            feat = torch.relu(layer(h))
            h = _noise(feat, self.arch.hidden_noise, gen)
        return self.head(h), feat

    def trainable(self) -> list[nn.Parameter]:
        """Parameters that training updates (all but the hidden layers' gains)."""
        return [p for p in self.parameters() if p.requires_grad]

    def linears(self) -> list[nn.Module]:
        """The weight-normalized layers, input to output."""
        return [*self.hidden, self.head]


class SSLGenerator(nn.Module):
    """z -> (linear, batch norm, softplus) x n -> weight-normalized linear -> sigmoid."""

    def __init__(self, cfg: SSLConfig, out_features: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = cfg.z_dim
        for w in cfg.g_widths:
            layers += [nn.Linear(width, w, bias=False), nn.BatchNorm1d(w), nn.Softplus()]
            width = w
        layers += [weight_norm(nn.Linear(width, out_features)), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@torch.no_grad()
def init_weight_norm(d: SSLDiscriminator, x01: torch.Tensor, gen: torch.Generator) -> None:
    """Data-dependent init (Salimans & Kingma 2016): each layer's pre-activations on
    ``x01`` get zero mean and unit variance, by setting its gain and bias."""
    h = _noise(x01, d.arch.input_noise, gen)
    layers = d.linears()
    for i, layer in enumerate(layers):
        pre = layer(h)
        mean, std = pre.mean(0), pre.std(0) + 1e-6
        g = layer.parametrizations.weight.original0
        g.div_(std.view_as(g))
        layer.bias.sub_(mean).div_(std)
        if i < len(layers) - 1:
            h = _noise(torch.relu(layer(h)), d.arch.hidden_noise, gen)


# ------------------------------------------------------------------------ training pieces
def index_stream(n: int, batch: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of indices in fresh permutations (repeats when n < batch)."""
    buf = torch.empty(0, dtype=torch.int64)
    while True:
        while len(buf) < batch:
            buf = torch.cat([buf, torch.randperm(n, generator=gen)])
        yield buf[:batch]
        buf = buf[batch:]


def make_adam(params: list[nn.Parameter], cfg: SSLConfig) -> torch.optim.Adam:
    """Adam with the configured learning rate and beta1."""
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, 0.999))


def set_lr(opts: list[torch.optim.Optimizer], cfg: SSLConfig, step: int) -> None:
    """Constant learning rate, then linear decay to 0 from ``decay_from * steps``."""
    start = cfg.decay_from * cfg.steps
    frac = 1.0 if step < start else max(0.0, (cfg.steps - step) / max(1.0, cfg.steps - start))
    for opt in opts:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * frac


class Ema:
    """Exponential moving average of a network's parameters (decay warms up from 0)."""

    def __init__(self, net: SSLDiscriminator, decay: float) -> None:
        self.net = copy.deepcopy(net).requires_grad_(False) if decay > 0 else net
        self.live, self.decay, self.count = net, decay, 0

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the live weights."""
        if self.net is self.live:
            return
        self.count += 1
        w = 1.0 - min(self.decay, (1.0 + self.count) / (10.0 + self.count))
        for avg, p in zip(self.net.parameters(), self.live.parameters(), strict=True):
            avg.lerp_(p, w)


def unsup_loss(lu: torch.Tensor, lf: torch.Tensor) -> torch.Tensor:
    """Mean of -log D(real) and -log(1 - D(fake)), D = Z / (Z + 1), Z = sum exp(logits)."""
    zu, zf = lu.logsumexp(1), lf.logsumexp(1)
    return 0.5 * (-zu.mean() + F.softplus(zu).mean() + F.softplus(zf).mean())


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def supervised_step(d: SSLDiscriminator, opt: torch.optim.Optimizer, xl: torch.Tensor,
                    yl: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
    """One step of cross-entropy on labeled images (the baseline)."""
    loss = F.cross_entropy(d(xl, gen)[0], yl)
    _step(opt, loss)
    return {"loss_sup": loss.item()}


def d_step(d: SSLDiscriminator, g: SSLGenerator, opt: torch.optim.Optimizer, cfg: SSLConfig,
           batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], gen: torch.Generator
           ) -> dict[str, float]:
    """Supervised cross-entropy + unsupervised real/fake loss on one batch of each kind."""
    xl, yl, xu = batch
    with torch.no_grad():
        xf = g(torch.rand(cfg.batch_size, cfg.z_dim, generator=gen))
    ll, lu, lf = d(torch.cat([xl, xu, xf]), gen)[0].split([len(xl), len(xu), len(xf)])
    sup, unsup = F.cross_entropy(ll, yl), unsup_loss(lu, lf)
    _step(opt, sup + cfg.unsup_weight * unsup)
    return {"loss_sup": sup.item(), "loss_unsup": unsup.item()}


def g_step(d: SSLDiscriminator, g: SSLGenerator, opt: torch.optim.Optimizer, cfg: SSLConfig,
           xu: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
    """Feature matching: squared distance of mean last-hidden features, real vs generated."""
    params = d.trainable()
    for p in params:
        p.requires_grad_(False)
    with torch.no_grad():
        real = d(xu, gen)[1].mean(0)
    fake = d(g(torch.rand(cfg.batch_size, cfg.z_dim, generator=gen)), gen)[1].mean(0)
    loss = (real - fake).square().mean()
    _step(opt, loss)
    for p in params:
        p.requires_grad_(True)
    return {"loss_g": loss.item()}
