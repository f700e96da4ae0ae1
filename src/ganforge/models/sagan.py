"""SAGAN (Zhang et al., 2019): the residual pair with spectral norm in G and D and
self-attention at one feature-map resolution."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ganforge.models.resnet_gan import ResNetDiscriminator, ResNetGANConfig, ResNetGenerator
from ganforge.registry import ModelSpec, register_model


class SAGANConfig(ResNetGANConfig):
    """SAGAN defaults: spectral norm in both networks, attention at half the image side
    (at most 64 px)."""

    family: ClassVar[str] = "sagan"
    default_attention: ClassVar[bool] = True

    g_sn: bool = Field(True, description="spectral norm on G's layers")


register_model(ModelSpec(
    name="sagan", kind="image", config_cls=SAGANConfig,
    build_generator=ResNetGenerator, build_discriminator=ResNetDiscriminator,
    description="SAGAN: self-attention + spectral norm in G and D, projection D",
))
