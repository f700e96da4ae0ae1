"""InfoGAN (Chen et al., 2016): generators whose latent vector carries structured codes.

The latent vector is ``[noise | one-hot categorical codes | continuous codes]``: noise
is N(0, 1) (or U(-1, 1)), each categorical code a uniform one-hot, each continuous code
U(-1, 1). The discriminator's trunk also feeds a Q head that predicts the codes of a
sample (the variational lower bound of the mutual information ``I(c; G(z, c))``),
trained by the ``infogan`` recipe. Codes are named ``cat0``, ``cat1``, ... and
``cont0``, ``cont1``, ...

Two model families share the codes and the Q head: ``infogan``, a DCGAN of 16-128 px,
and ``infogan-mnist``, the paper's MNIST networks (see :mod:`ganforge.models.infogan_mnist`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from ganforge.config import StrictModel
from ganforge.errors import ConfigError
from ganforge.models.base import (
    Generator,
    check_truncation,
    init_dcgan_weights,
    truncate_latents,
)
from ganforge.models.dcgan import (
    DCGANArchitecture,
    DCGANConfig,
    DCGANDiscriminator,
    DCGANGenerator,
)
from ganforge.registry import ModelSpec, register_model

LOG_STD_RANGE = (-4.0, 2.0)  # the Q head's continuous log-std is clamped to this range


class LatentCodesConfig(StrictModel):
    """The latent codes and the Q head, shared by every InfoGAN model family."""

    num_classes: int | None = Field(None, description="must stay None: InfoGAN is "
                                    "unconditional (its categorical codes replace labels)")
    noise_dim: int = Field(62, ge=1, description="incompressible noise dimensions")
    noise_prior: Literal["normal", "uniform"] = Field(
        "normal", description="the noise's prior: N(0, 1) or U(-1, 1) (the authors' code)")
    categorical: list[int] = Field(default_factory=lambda: [10], description="values of "
                                   "each categorical code (one uniform one-hot per entry)")
    continuous: int = Field(2, ge=0, description="number of U(-1, 1) continuous codes")
    q_width: int = Field(128, ge=1, description="hidden units of the Q head")
    q_std: Literal["learned", "fixed"] = Field(
        "learned", description="continuous codes: Gaussian with a learned std, or std 1 "
        "(the NLL is then half the squared error)")

    @field_validator("num_classes")
    @classmethod
    def _unconditional(cls, v: int | None) -> int | None:
        if v is not None:
            raise ValueError("infogan is unconditional: its categorical codes take the place "
                             "of labels. Drop --conditional (set conditional: false)")
        return v

    @field_validator("categorical")
    @classmethod
    def _code_sizes(cls, v: list[int]) -> list[int]:
        if any(k < 2 for k in v):
            raise ValueError(f"each categorical code needs at least 2 values, got {v}")
        return v

    @model_validator(mode="after")
    def _has_codes(self) -> LatentCodesConfig:
        if not self.categorical and self.continuous == 0:
            raise ValueError("infogan needs at least one latent code: set categorical "
                             "(e.g. [10]) or continuous (e.g. 2); a model without codes is "
                             "a plain GAN (--model dcgan)")
        return self

    @property
    def z_dim(self) -> int:
        return self.noise_dim + sum(self.categorical) + self.continuous


class InfoGANConfig(DCGANArchitecture, LatentCodesConfig):
    """Typed options of the InfoGAN pair: the DCGAN architecture plus the latent codes."""

    family: ClassVar[str] = "infogan"

    def dcgan(self) -> DCGANConfig:
        """The DCGAN config of the shared architecture (z_dim = noise + codes)."""
        shared = self.model_dump(include=set(DCGANArchitecture.model_fields))
        return DCGANConfig(**shared, z_dim=self.z_dim)


@dataclass(frozen=True)
class CodeLayout:
    """Where the noise and the codes sit in a latent vector, and how to draw them."""

    noise_dim: int
    categorical: tuple[int, ...]
    continuous: int
    noise_prior: Literal["normal", "uniform"] = "normal"  # uniform: U(-1, 1)

    @classmethod
    def of(cls, cfg: LatentCodesConfig) -> CodeLayout:
        return cls(cfg.noise_dim, tuple(cfg.categorical), cfg.continuous, cfg.noise_prior)

    @property
    def z_dim(self) -> int:
        return self.noise_dim + sum(self.categorical) + self.continuous

    @property
    def names(self) -> list[str]:
        """Code names: ``cat0``, ``cat1``, ..., ``cont0``, ``cont1``, ..."""
        return ([f"cat{i}" for i in range(len(self.categorical))]
                + [f"cont{i}" for i in range(self.continuous)])

    def parse(self, name: str) -> tuple[str, int]:
        """``"cat1"`` -> ``("cat", 1)``; ConfigError listing the valid names otherwise."""
        if name not in self.names:
            raise ConfigError(f"Unknown latent code '{name}'; this generator's codes are "
                              f"{', '.join(self.names)}.")
        kind = "cat" if name.startswith("cat") else "cont"
        return kind, int(name[len(kind):])

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """Draws from the prior: N(0, 1) (or U(-1, 1)) noise, uniform one-hots, U(-1, 1)
        codes."""
        if self.noise_prior == "uniform":
            noise = torch.rand(n, self.noise_dim, generator=generator, device=device) * 2 - 1
        else:
            noise = torch.randn(n, self.noise_dim, generator=generator, device=device)
        cats = torch.stack([torch.randint(k, (n,), generator=generator, device=device)
                            for k in self.categorical], 1) if self.categorical else None
        cont = torch.rand(n, self.continuous, generator=generator, device=device) * 2 - 1
        return self.make(noise, cats, cont)

    def make(self, noise: torch.Tensor, cat_indices: torch.Tensor | None = None,
             cont_values: torch.Tensor | None = None) -> torch.Tensor:
        """Latents from noise (N, noise_dim), code indices (N, n_cat) and values (N, n_cont)."""
        n = noise.shape[0]
        parts = [noise]
        if self.categorical:
            if cat_indices is None or tuple(cat_indices.shape) != (n, len(self.categorical)):
                raise ValueError(f"cat_indices must have shape ({n}, {len(self.categorical)})")
            parts += [F.one_hot(cat_indices[:, i].long(), k).to(noise.dtype)
                      for i, k in enumerate(self.categorical)]
        if self.continuous:
            if cont_values is None or tuple(cont_values.shape) != (n, self.continuous):
                raise ValueError(f"cont_values must have shape ({n}, {self.continuous})")
            parts.append(cont_values.to(noise.dtype))
        return torch.cat(parts, 1)

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(noise, one-hot block of each categorical code, continuous codes) of ``z``."""
        sizes = [self.noise_dim, *self.categorical, self.continuous]
        noise, *cats, cont = z.split(sizes, dim=1)
        return noise, list(cats), cont

    def set_code(self, z: torch.Tensor, name: str, value: float | int) -> torch.Tensor:
        """A copy of ``z`` with code ``name`` set to ``value`` (an index or a real)."""
        kind, i = self.parse(name)
        z = z.clone()
        if kind == "cat":
            k = self.categorical[i]
            if not 0 <= int(value) < k:
                raise ConfigError(f"Code {name} takes values 0..{k - 1}, got {value}.")
            start = self.noise_dim + sum(self.categorical[:i])
            z[:, start:start + k] = 0
            z[:, start + int(value)] = 1
        else:
            z[:, self.noise_dim + sum(self.categorical) + i] = float(value)
        return z


def layout_of(G: Any) -> CodeLayout:
    """The code layout of a generator (a module or a LoadedGenerator); ConfigError if none."""
    codes = getattr(getattr(G, "module", G), "codes", None)
    if not isinstance(codes, CodeLayout):
        name = getattr(G, "model", type(getattr(G, "module", G)).__name__)
        raise ConfigError(f"Generator '{name}' has no latent codes; code traversals and code "
                          "accuracy need an InfoGAN generator (train with --model infogan or "
                          "infogan-mnist, and --recipe infogan).")
    return codes


class QOutputs(NamedTuple):
    """The Q head's predictions: logits per categorical code, mean and log-std of the
    continuous codes (log-std is 0 when the std is fixed)."""

    cat_logits: list[torch.Tensor]
    cont_mean: torch.Tensor
    cont_log_std: torch.Tensor

    def float(self) -> QOutputs:
        return QOutputs([t.float() for t in self.cat_logits], self.cont_mean.float(),
                        self.cont_log_std.float())


class CodedGenerator(Generator):
    """A generator on ``[noise | codes]`` latents drawn from the InfoGAN prior
    (``self.codes``, set by the subclass)."""

    codes: CodeLayout

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None,
                       truncation: float | None = None) -> torch.Tensor:
        """Noise, one-hot uniform categorical codes, U(-1, 1) continuous codes.

        ``truncation=t`` truncates the noise only (to ``|z_i| <= t``: the truncated normal,
        or for uniform noise U(-t, t) when t < 1); the codes keep their prior and, for a
        given seed, their values.
        """
        t = check_truncation(truncation)
        z = self.codes.sample(n, generator=generator, device=device)
        if t is not None:
            k = self.codes.noise_dim
            noise = (z[:, :k] * min(t, 1.0) if self.codes.noise_prior == "uniform"
                     else truncate_latents(z[:, :k], t))
            z = torch.cat([noise, z[:, k:]], 1)
        return z

    def make_latents(self, noise: torch.Tensor, cat_indices: torch.Tensor | None = None,
                     cont_values: torch.Tensor | None = None) -> torch.Tensor:
        return self.codes.make(noise, cat_indices, cont_values)

    def split_latents(self, z: torch.Tensor
                      ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        return self.codes.split(z)


class InfoGANGenerator(CodedGenerator, DCGANGenerator):
    """The DCGAN generator on ``[noise | codes]`` latents drawn from the InfoGAN prior."""

    def __init__(self, cfg: InfoGANConfig) -> None:
        super().__init__(cfg.dcgan())
        self.codes = CodeLayout.of(cfg)


class CodedDiscriminator(nn.Module):
    """A discriminator whose trunk (``features``) feeds both its real/fake ``head`` and
    the Q head (one shared pass); the subclass builds the trunk and the head."""

    features: nn.Module
    head: nn.Module

    def attach_q(self, cfg: LatentCodesConfig, in_features: int, batch_norm: bool) -> None:
        """The Q head on ``in_features`` trunk outputs: linear, norm, LeakyReLU, linear."""
        self.codes = CodeLayout.of(cfg)
        self.learn_std = cfg.q_std == "learned"
        out = sum(cfg.categorical) + cfg.continuous * (2 if self.learn_std else 1)
        self.q = nn.Sequential(nn.Linear(in_features, cfg.q_width, bias=not batch_norm),
                               nn.BatchNorm1d(cfg.q_width) if batch_norm else nn.Identity(),
                               nn.LeakyReLU(0.2, inplace=True), nn.Linear(cfg.q_width, out))
        init_dcgan_weights(self.q)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Real/fake logits (the plain discriminator call)."""
        return self.head(self.features(x), labels)

    def judge(self, x: torch.Tensor) -> tuple[torch.Tensor, QOutputs]:
        """Real/fake logits and the Q head's code predictions from one pass."""
        phi = self.features(x)
        return self.head(phi), self.q_outputs(self.q(phi))

    def q_outputs(self, raw: torch.Tensor) -> QOutputs:
        c = self.codes.continuous
        *cats, mean, rest = raw.split([*self.codes.categorical, c, raw.shape[1] - c
                                       - sum(self.codes.categorical)], dim=1)
        log_std = rest.clamp(*LOG_STD_RANGE) if self.learn_std else torch.zeros_like(mean)
        return QOutputs(list(cats), mean, log_std)


class InfoGANDiscriminator(CodedDiscriminator, DCGANDiscriminator):
    """The DCGAN discriminator whose trunk also feeds the Q head."""

    def __init__(self, cfg: InfoGANConfig) -> None:
        super().__init__(cfg.dcgan())
        self.attach_q(cfg, self.head.linear.in_features, batch_norm=cfg.d_norm == "batch")


register_model(ModelSpec(
    name="infogan", kind="image", config_cls=InfoGANConfig,
    build_generator=InfoGANGenerator, build_discriminator=InfoGANDiscriminator,
    description="InfoGAN: DCGAN with categorical/continuous latent codes and a Q head "
                "(train with --recipe infogan)",
    recipe="infogan",
))
