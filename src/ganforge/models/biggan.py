"""BigGAN (Brock et al., 2019): SAGAN plus a shared class embedding, hierarchical latents
feeding every block's conditional batch norm, and orthogonal initialization.

Train it the BigGAN way with ``loss: hinge``, ``n_critic: 2``, ``ortho_reg: 1e-4``,
Adam betas (0, 0.999) with D's learning rate 4x G's (two time-scale update rule), and the
EMA generator (``ema_kimg``); sample with ``truncation``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ganforge.models.resnet_gan import ResNetDiscriminator, ResNetGANConfig, ResNetGenerator
from ganforge.registry import ModelSpec, register_model


class BigGANConfig(ResNetGANConfig):
    """BigGAN defaults: SN in G and D, attention at half the image side (at most 64 px),
    shared embedding 128, hierarchical z, orthogonal init."""

    family: ClassVar[str] = "biggan"
    default_attention: ClassVar[bool] = True

    g_sn: bool = Field(True, description="spectral norm on G's layers")
    shared_embedding: int | None = Field(128, ge=1, description="size of the class "
                                         "embedding shared by every conditional BN")
    hierarchical_z: bool = Field(True, description="one chunk of z per block, fed to its "
                                 "conditional batch norms")
    init: Literal["ortho", "xavier", "normal"] = Field("ortho", description="weight "
                                                       "initialization")


register_model(ModelSpec(
    name="biggan", kind="image", config_cls=BigGANConfig,
    build_generator=ResNetGenerator, build_discriminator=ResNetDiscriminator,
    description="BigGAN: shared class embedding, hierarchical z, conditional BN, "
                "self-attention, spectral norm, projection D",
))
