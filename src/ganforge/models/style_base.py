"""What StyleGAN (v1) and StyleGAN2 share: the mapping network, the ws layout and the
W-space tools (truncation psi with a cutoff, style-mixing bands, per-layer styles).

**ws layout.** Resolution ``r = 4 * 2**k`` owns ws indices ``2k`` and ``2k + 1``, so
``num_ws = 2 log2(resolution) - 2`` (18 at 1024 px, 8 at 32 px) and every index belongs
to exactly one resolution. That makes the paper's style-mixing split clean:
``layer_ranges()`` gives "coarse" = 4-8 px (ws 0-3), "middle" = 16-32 px (ws 4-7),
"fine" = 64 px and up (ws 8 on). The split is by absolute resolution as in the paper,
so at 32 px and below "fine" is empty and at 16 px "middle" covers only 16 px (ws 4-5);
``ws_indices(lo, hi)`` gives any other band.

**Mapping.** z is normalized by its second moment, concatenated with a (normalized) class
embedding when conditional, and sent through ``mapping_layers`` equalized-lr FC layers
with lr multiplier ``mapping_lr_mul``. ``mapping.w_avg`` tracks the mean w (moving
average, updated only in training mode; one average for all classes). Truncation psi:
``w' = w_avg + psi (w - w_avg)`` on ws indices below ``truncation_cutoff`` (None: all).

**Noise.** ``noise_mode``: ``random`` (fresh draws; from ``noise_generator`` if given),
``const`` (fixed per-layer buffers saved with the model), ``none``; ``auto`` (the
default) is ``random`` in training mode and ``const`` in eval mode, so sampling a loaded
(eval) generator is reproducible from the seed of its latents alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from ganforge.config import StrictModel
from ganforge.models.base import Generator, check_resolution, check_truncation
from ganforge.nn import ProjectionHead
from ganforge.nn.style import (
    EqualConv2d,
    EqualEmbedding,
    EqualLinear,
    MinibatchStdDev,
    NoiseMode,
)

RESOLUTIONS = (16, 32, 64, 128, 256, 512, 1024)
NoiseModeArg = Literal["auto", "random", "const", "none"]
LayersArg = str | int | slice | range | Sequence[int] | torch.Tensor
# the paper's style-mixing bands, by feature-map resolution (inclusive)
BANDS: dict[str, tuple[int, int]] = {"coarse": (4, 8), "middle": (16, 32),
                                     "fine": (64, 1 << 30)}


class StyleConfig(StrictModel):
    """Options every style-based pair has (mapping network, widths, minibatch stddev)."""

    family: ClassVar[str] = "style-based"  # the registered name, for error messages

    resolution: int = 32
    channels: int = Field(1, ge=1)
    num_classes: int | None = Field(None, ge=2)
    z_dim: int = Field(128, ge=1)
    w_dim: int = Field(128, ge=1, description="size of w (and of the class embedding)")
    mapping_layers: int = Field(8, ge=1, description="FC layers of the mapping network")
    mapping_lr_mul: float = Field(0.01, gt=0, description="learning-rate multiplier of "
                                  "the mapping network")
    w_avg_beta: float = Field(0.995, ge=0, lt=1, description="decay of the moving average "
                              "of w used by truncation")
    channel_base: int = Field(1024, ge=1, description="width at resolution r is "
                              "min(channel_base // r, channel_max), in G and D")
    channel_max: int = Field(64, ge=1, description="widest layer in G and D")
    mbstd_group: int = Field(4, ge=1, description="minibatch-stddev group size in D")
    mbstd_channels: int = Field(1, ge=1, description="minibatch-stddev feature maps")
    output_tanh: bool = Field(False, description="squash G's images into (-1, 1) with tanh "
                              "(off, as in the papers; on, data with a saturated background "
                              "such as MNIST learns much faster)")

    @field_validator("resolution")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        return check_resolution(cls.family, v, RESOLUTIONS)

    @model_validator(mode="after")
    def _mbstd_divides(self) -> StyleConfig:
        w4 = width(self, 4)
        if w4 % self.mbstd_channels:
            raise ValueError(f"mbstd_channels ({self.mbstd_channels}) must divide D's width "
                             f"at 4x4 ({w4} = min(channel_base // 4, channel_max))")
        return self


def width(cfg: StyleConfig, res: int) -> int:
    """Channels at feature-map side ``res``."""
    return max(1, min(cfg.channel_base // res, cfg.channel_max))


def log2(res: int) -> int:
    """log2 of a power of two."""
    return res.bit_length() - 1


def resolutions_up_to(resolution: int) -> list[int]:
    """The feature-map sides of a style-based network: 4, 8, ..., ``resolution``."""
    return [2**k for k in range(2, log2(resolution) + 1)]


def num_ws_for(resolution: int) -> int:
    """Style inputs of a synthesis network at ``resolution``: two per resolution from 4."""
    return 2 * log2(resolution) - 2


def squash_output(img: torch.Tensor, tanh: bool) -> torch.Tensor:
    """G's final images: linear (the papers) or through tanh (``output_tanh``)."""
    return torch.tanh(img) if tanh else img


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Divide each row by its root mean square."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def resolve_noise_mode(mode: str, training: bool) -> NoiseMode:
    """``auto`` -> random in training, const in eval; the others validated."""
    if mode == "auto":
        return "random" if training else "const"
    if mode not in ("random", "const", "none"):
        raise ValueError(f"noise_mode must be 'auto', 'random', 'const' or 'none', got "
                         f"{mode!r}")
    return mode  # type: ignore[return-value]


def check_ws(ws: torch.Tensor, num_ws: int, w_dim: int) -> None:
    """ValueError unless ``ws`` is (N, num_ws, w_dim)."""
    if ws.dim() != 3 or ws.shape[1:] != (num_ws, w_dim):
        raise ValueError(f"ws must have shape (N, {num_ws}, {w_dim}) (one w per style "
                         f"input; see G.mapping), got {tuple(ws.shape)}")


class MappingNetwork(nn.Module):
    """z (+ class) -> w, broadcast to ``num_ws`` copies, with optional truncation."""

    def __init__(self, cfg: StyleConfig, num_ws: int) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = cfg.z_dim, cfg.w_dim, num_ws
        self.num_classes, self.w_avg_beta = cfg.num_classes, cfg.w_avg_beta
        self.embed = EqualEmbedding(cfg.num_classes, cfg.w_dim) if cfg.num_classes else None
        dims = [cfg.z_dim + (cfg.w_dim if self.embed is not None else 0)] \
            + [cfg.w_dim] * cfg.mapping_layers
        self.net = nn.Sequential(*(EqualLinear(a, b, lr_mul=cfg.mapping_lr_mul,
                                               activation="lrelu")
                                   for a, b in itertools.pairwise(dims)))
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                truncation: float | None = None, truncation_cutoff: int | None = None
                ) -> torch.Tensor:
        labels = Generator.check_labels(self, z.shape[0], labels)  # type: ignore[arg-type]
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            assert labels is not None
            x = torch.cat([x, normalize_2nd_moment(self.embed(labels).to(x.dtype))], dim=1)
        w = self.net(x)
        if self.training:
            with torch.no_grad():
                self.w_avg.lerp_(w.detach().float().mean(dim=0), 1.0 - self.w_avg_beta)
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        psi = check_truncation(truncation, "w")
        if psi is not None and psi != 1.0:
            cut = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
            avg = self.w_avg.to(ws.dtype)
            mask = (torch.arange(self.num_ws, device=ws.device) < cut)[None, :, None]
            ws = torch.where(mask, avg + psi * (ws - avg), ws)
        return ws


class StyleGenerator(Generator):
    """Mapping + synthesis: ``forward(z, labels, truncation, truncation_cutoff,
    noise_mode)``. Subclasses build ``self.synthesis`` (a module taking ``(ws,
    noise_mode, noise_generator)`` with ``num_ws``, ``w_dim`` and ``styles(ws)``)."""

    kind = "image"
    truncation_space = "w"  # psi, applied in forward; sample_latents draws plain z

    def __init__(self, cfg: StyleConfig, synthesis: nn.Module) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes = cfg.z_dim, cfg.w_dim, cfg.num_classes
        self.sample_shape = (cfg.channels, cfg.resolution, cfg.resolution)
        self.synthesis = synthesis
        self.num_ws = num_ws_for(cfg.resolution)
        self.mapping = MappingNetwork(cfg, self.num_ws)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                truncation: float | None = None, truncation_cutoff: int | None = None,
                noise_mode: NoiseModeArg = "auto",
                noise_generator: torch.Generator | None = None) -> torch.Tensor:
        ws = self.mapping(z, labels, truncation, truncation_cutoff)
        return self.synthesis(ws, noise_mode, noise_generator)

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None,
                       truncation: float | None = None) -> torch.Tensor:
        """Plain N(0, 1) latents; ``truncation`` is ignored here (it is psi, applied to w
        in ``forward``)."""
        return torch.randn(n, self.z_dim, generator=generator, device=device)

    def check_ws(self, ws: torch.Tensor) -> None:
        """ValueError unless ``ws`` is (N, num_ws, w_dim)."""
        check_ws(ws, self.num_ws, self.w_dim)

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-layer style vectors for ``ws`` (the affine maps' outputs), keyed
        'b{res}.{layer}'."""
        return self.synthesis.styles(ws)

    def ws_indices(self, lo: int, hi: int) -> list[int]:
        """ws indices of the layers at feature-map resolutions ``lo``..``hi`` (inclusive)."""
        return [i for r in resolutions_up_to(self.sample_shape[-1])
                if lo <= r <= hi for i in (2 * log2(r) - 4, 2 * log2(r) - 3)]

    def layer_ranges(self) -> dict[str, list[int]]:
        """The paper's style-mixing bands as ws indices: coarse (4-8 px), middle (16-32 px),
        fine (64 px and up). By absolute resolution: empty bands stay empty (no "fine"
        at 32 px and below)."""
        return {name: self.ws_indices(lo, hi) for name, (lo, hi) in BANDS.items()}

    def mix(self, ws_dst: torch.Tensor, ws_src: torch.Tensor, layers: LayersArg
            ) -> torch.Tensor:
        """A copy of ``ws_dst`` whose ws at ``layers`` (a band name from
        :meth:`layer_ranges`, an index, a slice/range, a list of indices or a boolean
        mask of length ``num_ws``) come from ``ws_src`` (same shape, or a batch of one
        broadcast to all)."""
        self.check_ws(ws_dst)
        if ws_src.dim() != 3 or ws_src.shape[1:] != ws_dst.shape[1:] \
                or ws_src.shape[0] not in (1, ws_dst.shape[0]):
            raise ValueError(f"ws_src must have shape ({ws_dst.shape[0]} or 1, {self.num_ws}, "
                             f"{self.w_dim}), got {tuple(ws_src.shape)}")
        mask = torch.zeros(self.num_ws, dtype=torch.bool, device=ws_dst.device)
        if isinstance(layers, str):
            ranges = self.layer_ranges()
            if layers not in ranges:
                raise ValueError(f"unknown layer range {layers!r}; use one of "
                                 f"{', '.join(ranges)}, an index or a list of indices")
            mask[ranges[layers]] = True
        elif isinstance(layers, (int, slice)):
            mask[layers] = True
        elif isinstance(layers, torch.Tensor) and layers.dtype == torch.bool:
            if layers.shape != (self.num_ws,):
                raise ValueError(f"a boolean layer mask must have shape ({self.num_ws},), "
                                 f"got {tuple(layers.shape)}")
            mask = layers.to(mask.device)
        else:
            idx = torch.as_tensor(list(layers) if isinstance(layers, range) else layers,
                                  dtype=torch.long)
            if idx.numel() and (idx.min() < -self.num_ws or idx.max() >= self.num_ws):
                raise ValueError(f"ws indices must lie in [0, {self.num_ws - 1}], got "
                                 f"{idx.tolist()}")
            mask[idx.to(mask.device)] = True
        return torch.where(mask[None, :, None], ws_src.to(ws_dst.dtype), ws_dst)


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 end of a style-based D: minibatch stddev, 3x3 conv, FC, and a projection
    head (Miyato & Koyama 2018) for class-conditional use; equalized lr throughout."""

    def __init__(self, cfg: StyleConfig) -> None:
        super().__init__()
        c4 = width(cfg, 4)
        self.mbstd = MinibatchStdDev(cfg.mbstd_group, cfg.mbstd_channels)
        self.conv = EqualConv2d(c4 + cfg.mbstd_channels, c4, 3, activation="lrelu")
        self.fc = EqualLinear(c4 * 16, c4, activation="lrelu")
        embed = EqualEmbedding(cfg.num_classes, c4) if cfg.num_classes else None
        self.head = ProjectionHead(c4, cfg.num_classes, linear=EqualLinear(c4, 1), embed=embed)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(self.mbstd(h))
        return self.head(self.fc(h.flatten(1)), labels)
