"""DCGAN (Radford et al., 2016) for square images of 16-128 px, optionally conditional.

Conditional G concatenates a learned label embedding to z; conditional D uses a
projection head on its flattened features.
"""

from __future__ import annotations

import itertools
from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from ganforge.config import StrictModel
from ganforge.models.base import Generator, check_resolution, init_dcgan_weights
from ganforge.nn import ProjectionHead
from ganforge.registry import ModelSpec, register_model

RESOLUTIONS = (16, 32, 64, 128)


class DCGANArchitecture(StrictModel):
    """The shape of the convolutional pair, shared by the DCGAN-based families."""

    family: ClassVar[str] = "dcgan"  # named in errors

    resolution: int = 32
    channels: int = Field(1, ge=1)
    g_width: int = Field(64, ge=1, description="G channels at the last hidden layer")
    d_width: int = Field(64, ge=1, description="D channels at the first layer")
    max_width: int = Field(512, ge=1)
    g_norm: Literal["batch", "none"] = "batch"
    d_norm: Literal["batch", "none"] = "batch"

    @field_validator("resolution")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        return check_resolution(cls.family, v, RESOLUTIONS)


class DCGANConfig(DCGANArchitecture):
    """Typed options of the DCGAN pair."""

    num_classes: int | None = Field(None, ge=2)
    z_dim: int = Field(100, ge=1)
    embed_dim: int = Field(32, ge=1, description="label embedding size in G")


def _levels(resolution: int) -> int:
    return resolution.bit_length() - 3  # log2(res) - 2 doublings from 4x4


def _norm2d(kind: str, ch: int) -> nn.Module:
    return nn.BatchNorm2d(ch) if kind == "batch" else nn.Identity()


class DCGANGenerator(Generator):
    """z (+ label embedding) -> 4x4 -> transposed-conv doublings -> tanh image."""

    kind = "image"

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        self.z_dim, self.num_classes = cfg.z_dim, cfg.num_classes
        self.sample_shape = (cfg.channels, cfg.resolution, cfg.resolution)
        n = _levels(cfg.resolution)
        widths = [min(cfg.max_width, cfg.g_width * 2 ** (n - 1 - i)) for i in range(n)]
        self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim) if cfg.num_classes else None
        in_dim = cfg.z_dim + (cfg.embed_dim if self.embed is not None else 0)
        bias = cfg.g_norm == "none"
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, widths[0], 4, 1, 0, bias=bias),
                                   _norm2d(cfg.g_norm, widths[0]), nn.ReLU(inplace=True)]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias),
                       _norm2d(cfg.g_norm, c_out), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        labels = self.check_labels(z.shape[0], labels)
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """Strided convs with LeakyReLU down to 4x4, then a (projection) linear head."""

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        n = _levels(cfg.resolution)
        widths = [min(cfg.max_width, cfg.d_width * 2**i) for i in range(n)]
        bias = cfg.d_norm == "none"
        layers: list[nn.Module] = [nn.Conv2d(cfg.channels, widths[0], 4, 2, 1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias), _norm2d(cfg.d_norm, c_out),
                       nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = ProjectionHead(widths[-1] * 16, cfg.num_classes)
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x), labels)


register_model(ModelSpec(
    name="dcgan", kind="image", config_cls=DCGANConfig,
    build_generator=DCGANGenerator, build_discriminator=DCGANDiscriminator,
    description="DCGAN, 16-128 px, any channel count, optional class conditioning",
))
