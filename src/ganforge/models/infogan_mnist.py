"""InfoGAN's MNIST networks (Chen et al., 2016, the appendix's MNIST table), as
``infogan-mnist``.

G: z -> FC 1024 -> FC 128 x (r/4)^2 -> 4x4 transposed conv 64 -> 4x4 transposed conv to
the image (tanh), batch norm and ReLU between. D: 4x4 conv 64 (stride 2, LeakyReLU) ->
4x4 conv 128 (stride 2, batch norm) -> FC 1024 (batch norm) -> the real/fake logit; the
Q head (FC ``q_width``, batch norm, then the codes) reads D's FC 1024 layer. ``r`` is
the resolution, 28 for MNIST. LeakyReLU slopes are 0.2, as in the DCGAN pair (the paper
gives none). The defaults are the authors' released MNIST setting: 62 U(-1, 1) noise
dimensions and Q's continuous std fixed at 1. ``d_norm: none`` drops D's and Q's batch
norm, which per-sample penalties (WGAN-GP, R1, R2) default to.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from ganforge.models.base import init_dcgan_weights
from ganforge.models.infogan import (
    CodedDiscriminator,
    CodedGenerator,
    CodeLayout,
    LatentCodesConfig,
)
from ganforge.nn import ProjectionHead
from ganforge.registry import ModelSpec, register_model

FC_WIDTH = 1024  # the fully connected layer of G and of D in the paper
CONV_WIDTHS = (64, 128)  # D's convs; G's run in reverse


class InfoGANMnistConfig(LatentCodesConfig):
    """Typed options of the paper's MNIST pair: the image shape plus the latent codes."""

    family: ClassVar[str] = "infogan-mnist"

    resolution: int = Field(28, description="image side, a multiple of 4 from 8 to 64")
    channels: int = Field(1, ge=1)
    noise_prior: Literal["normal", "uniform"] = Field(
        "uniform", description="the noise's prior: N(0, 1) or U(-1, 1) (the authors' code)")
    q_std: Literal["learned", "fixed"] = Field(
        "fixed", description="continuous codes: Gaussian with a learned std, or std 1 "
        "(the authors' code; the NLL is then half the squared error)")
    d_norm: Literal["batch", "none"] = Field(
        "batch", description="batch norm in D and Q (the paper), or none")

    @field_validator("resolution")
    @classmethod
    def _multiple_of_four(cls, v: int) -> int:
        if v % 4 or not 8 <= v <= 64:
            raise ValueError(f"infogan-mnist needs a resolution that is a multiple of 4 from 8 "
                             f"to 64 (two stride-2 layers), got {v}. Use --resolution 28 for "
                             "MNIST, or --model infogan for other sizes")
        return v


class InfoGANMnistGenerator(CodedGenerator):
    """z -> FC 1024 -> FC 128 x (r/4)^2 -> two 4x4 stride-2 transposed convs -> tanh."""

    kind = "image"

    def __init__(self, cfg: InfoGANMnistConfig) -> None:
        super().__init__()
        self.codes = CodeLayout.of(cfg)
        self.z_dim, self.num_classes = cfg.z_dim, None
        self.sample_shape = (cfg.channels, cfg.resolution, cfg.resolution)
        side, (c1, c2) = cfg.resolution // 4, CONV_WIDTHS
        self.net = nn.Sequential(
            nn.Linear(cfg.z_dim, FC_WIDTH, bias=False), nn.BatchNorm1d(FC_WIDTH),
            nn.ReLU(inplace=True),
            nn.Linear(FC_WIDTH, c2 * side * side, bias=False), nn.BatchNorm1d(c2 * side * side),
            nn.ReLU(inplace=True), nn.Unflatten(1, (c2, side, side)),
            nn.ConvTranspose2d(c2, c1, 4, 2, 1, bias=False), nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c1, cfg.channels, 4, 2, 1), nn.Tanh())
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.check_labels(z.shape[0], labels)
        return self.net(z)


class InfoGANMnistDiscriminator(CodedDiscriminator):
    """Two 4x4 stride-2 convs -> FC 1024, shared by the real/fake logit and the Q head."""

    def __init__(self, cfg: InfoGANMnistConfig) -> None:
        super().__init__()
        side, (c1, c2) = cfg.resolution // 4, CONV_WIDTHS
        batch = cfg.d_norm == "batch"
        self.features = nn.Sequential(
            nn.Conv2d(cfg.channels, c1, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c1, c2, 4, 2, 1, bias=not batch),
            nn.BatchNorm2d(c2) if batch else nn.Identity(),
            nn.LeakyReLU(0.2, inplace=True), nn.Flatten(),
            nn.Linear(c2 * side * side, FC_WIDTH, bias=not batch),
            nn.BatchNorm1d(FC_WIDTH) if batch else nn.Identity(),
            nn.LeakyReLU(0.2, inplace=True))
        self.head = ProjectionHead(FC_WIDTH)
        init_dcgan_weights(self)
        self.attach_q(cfg, FC_WIDTH, batch_norm=batch)


register_model(ModelSpec(
    name="infogan-mnist", kind="image", config_cls=InfoGANMnistConfig,
    build_generator=InfoGANMnistGenerator, build_discriminator=InfoGANMnistDiscriminator,
    description="InfoGAN with the paper's MNIST networks (FC + 2 convs, 28x28 by default; "
                "train with --recipe infogan)",
    recipe="infogan",
))
