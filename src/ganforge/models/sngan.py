"""SNGAN (Miyato et al., 2018; projection D of Miyato & Koyama, 2018): the residual pair
with spectral norm in D, batch norm (class-conditional gains and biases) in G."""

from __future__ import annotations

from typing import ClassVar

from ganforge.models.resnet_gan import ResNetDiscriminator, ResNetGANConfig, ResNetGenerator
from ganforge.registry import ModelSpec, register_model


class SNGANConfig(ResNetGANConfig):
    """SNGAN defaults: spectral norm in D only, no attention, per-layer class gains."""

    family: ClassVar[str] = "sngan"


register_model(ModelSpec(
    name="sngan", kind="image", config_cls=SNGANConfig,
    build_generator=ResNetGenerator, build_discriminator=ResNetDiscriminator,
    description="SNGAN ResNet pair: spectral norm in D, projection D, conditional BN in G",
))
