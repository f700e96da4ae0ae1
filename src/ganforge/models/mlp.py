"""MLP generator and discriminator for points (2-D mixtures, tabular rows)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ganforge.config import StrictModel
from ganforge.models.base import Generator
from ganforge.nn import ProjectionHead
from ganforge.registry import ModelSpec, register_model


class MLPConfig(StrictModel):
    """Typed options of the MLP pair."""

    data_dim: int = Field(2, ge=1)
    num_classes: int | None = Field(None, ge=2)
    z_dim: int = Field(16, ge=1)
    embed_dim: int = Field(16, ge=1, description="label embedding size in G")
    g_hidden: int = Field(256, ge=1)
    g_layers: int = Field(3, ge=1)
    d_hidden: int = Field(256, ge=1)
    d_layers: int = Field(3, ge=1)
    d_maxout: int = Field(1, ge=1, le=16, description="pieces per D unit: 1 = LeakyReLU, "
                          "k > 1 = maxout over k linear pieces (the PacGAN/VEEGAN mixture "
                          "discriminator uses 5)")
    g_norm: Literal["batch", "none"] = "none"


class MLPGenerator(Generator):
    """z (+ label embedding) -> ReLU MLP -> linear output (unbounded)."""

    kind = "points"

    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        self.z_dim, self.num_classes = cfg.z_dim, cfg.num_classes
        self.sample_shape = (cfg.data_dim,)
        self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim) if cfg.num_classes else None
        width = cfg.z_dim + (cfg.embed_dim if self.embed is not None else 0)
        layers: list[nn.Module] = []
        for _ in range(cfg.g_layers):
            layers += [nn.Linear(width, cfg.g_hidden),
                       nn.BatchNorm1d(cfg.g_hidden) if cfg.g_norm == "batch" else nn.Identity(),
                       nn.ReLU(inplace=True)]
            width = cfg.g_hidden
        layers.append(nn.Linear(width, cfg.data_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        labels = self.check_labels(z.shape[0], labels)
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z)


class Maxout(nn.Module):
    """Linear layer with ``pieces`` outputs per unit, reduced by their maximum
    (Goodfellow et al., 2013)."""

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return y.view(*y.shape[:-1], -1, self.pieces).amax(dim=-1)


class MLPDiscriminator(nn.Module):
    """LeakyReLU (or maxout) MLP with a (projection) linear head."""

    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = cfg.data_dim
        for _ in range(cfg.d_layers):
            if cfg.d_maxout > 1:
                layers.append(Maxout(width, cfg.d_hidden, cfg.d_maxout))
            else:
                layers += [nn.Linear(width, cfg.d_hidden), nn.LeakyReLU(0.2, inplace=True)]
            width = cfg.d_hidden
        self.features = nn.Sequential(*layers)
        self.head = ProjectionHead(width, cfg.num_classes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x), labels)


register_model(ModelSpec(
    name="mlp", kind="points", config_cls=MLPConfig,
    build_generator=MLPGenerator, build_discriminator=MLPDiscriminator,
    description="MLP pair for 2-D and tabular points, optional class conditioning",
))
