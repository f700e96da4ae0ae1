"""PacGAN packing (Lin et al., 2018): the discriminator judges m samples jointly.

A packed discriminator is the family's own discriminator built for m times the input
channels (images) or features (points); ``m`` consecutive samples of a batch are
concatenated along that axis and receive one logit.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel
from torch import nn

from ganforge.errors import ConfigError
from ganforge.registry import ModelSpec

_INPUT_FIELD = {"image": "channels", "points": "data_dim"}


class PackedDiscriminator(nn.Module):
    """Wraps a discriminator built for ``m`` x the input width; one logit per m samples."""

    def __init__(self, net: nn.Module, m: int) -> None:
        super().__init__()
        self.net, self.m = net, m

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, ...) -> (N/m, m*C, ...): samples i*m .. i*m+m-1 form pack i."""
        n = x.shape[0]
        if n % self.m:
            raise ValueError(f"a packed discriminator needs a batch divisible by pack={self.m}"
                             f", got {n} samples")
        return x.reshape(n // self.m, self.m * x.shape[1], *x.shape[2:])

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            raise ValueError("a packed discriminator is unconditional: do not pass labels")
        return self.net(self.pack(x))


def build_discriminator(spec: ModelSpec, model_cfg: BaseModel, pack: int = 1) -> nn.Module:
    """The family's discriminator; packed (PacGAN) when ``pack`` > 1."""
    if pack == 1:
        return spec.build_discriminator(model_cfg)
    check_packable(spec, model_cfg, pack)
    field = _INPUT_FIELD[spec.kind]
    wide = model_cfg.model_copy(update={field: getattr(model_cfg, field) * pack})
    return PackedDiscriminator(spec.build_discriminator(wide), pack)


def check_packable(spec: ModelSpec, model_cfg: BaseModel, pack: int) -> None:
    """Clear errors for packing a conditional model or a family without an input width."""
    field = _INPUT_FIELD.get(spec.kind)
    if field is None or field not in type(model_cfg).model_fields:
        raise ConfigError(f"Model '{spec.name}' has no '{_INPUT_FIELD.get(spec.kind, 'input')}'"
                          " setting to widen, so its discriminator cannot be packed; drop "
                          "--set pack.")
    if getattr(model_cfg, "num_classes", None):
        raise ConfigError(f"pack={pack} packs samples of different classes into one judgement;"
                          " packing is for unconditional runs. Drop --conditional or set "
                          "pack: 1.")
