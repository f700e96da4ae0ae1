"""StyleGAN2 (Karras et al., 2020) networks in pure PyTorch, for square images of 16-1024 px.

Generator = mapping network + synthesis network:

- ``G.mapping(z, labels, truncation, truncation_cutoff) -> ws`` (N, num_ws, w_dim): z is
  normalized by its second moment, concatenated with a (normalized) class embedding when
  conditional, and sent through ``mapping_layers`` equalized-lr FC layers with lr
  multiplier 0.01. ``mapping.w_avg`` tracks the mean w (moving average, beta 0.995,
  updated only in training mode; one average for all classes). Truncation psi:
  ``w' = w_avg + psi (w - w_avg)`` on ws indices below ``truncation_cutoff`` (None: all).
- ``G.synthesis(ws, noise_mode) -> images``: a learned 4x4 constant, then per resolution
  two modulated 3x3 convs (the first upsampling by 2 with the [1, 3, 3, 1] FIR filter,
  except at 4x4 which has one), each with noise and a per-layer affine map from w to its
  style; skip-connected toRGB outputs are upsampled and summed (linear output, as in the
  paper: training does not squash it, so values may leave [-1, 1] slightly).
- ``G(z, labels, truncation=None, truncation_cutoff=None, noise_mode="auto")``.

**ws layout.** Resolution ``r = 4 * 2**k`` owns ws indices ``2k`` and ``2k + 1``: its
first conv reads ``2k``, its second conv and its toRGB read ``2k + 1`` (4x4 has only one
conv, which reads 0; its toRGB reads 1). So ``num_ws = 2 log2(resolution) - 2`` (18 at
1024 px, 8 at 32 px) and every index belongs to exactly one resolution, which is what
makes the paper's split clean: ``layer_ranges()`` gives "coarse" = 4-8 px (ws 0-3),
"middle" = 16-32 px (ws 4-7), "fine" = 64 px and up (ws 8 on). The split is by absolute
resolution as in the paper, so at 32 px and below "fine" is empty and at 16 px "middle"
covers only 16 px (ws 4-5); ``ws_indices(lo, hi)`` gives any other band.

**Noise.** ``noise_mode``: ``random`` (fresh draws; from ``noise_generator`` if given),
``const`` (fixed per-layer buffers saved with the model), ``none``; ``auto`` (the
default) is ``random`` in training mode and ``const`` in eval mode, so sampling a loaded
(eval) generator is reproducible from the seed of its latents alone.

Discriminator: StyleGAN2's residual D: fromRGB 1x1, residual blocks (two 3x3 convs, the
second FIR-downsampling, plus a 1x1 FIR-downsampling skip, summed times sqrt(1/2)) down
to 4x4, minibatch stddev, 3x3 conv, FC, and a projection head (Miyato & Koyama 2018) for
class-conditional use. Equalized learning rate throughout; widths are
``min(channel_base // r, channel_max)`` at resolution r (small CPU-friendly defaults).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

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
    StyleConv,
    ToRGB,
    fir_kernel,
    upsample2d,
)
from ganforge.registry import ModelSpec, register_model

RESOLUTIONS = (16, 32, 64, 128, 256, 512, 1024)
NoiseModeArg = Literal["auto", "random", "const", "none"]
LayersArg = str | int | slice | range | Sequence[int] | torch.Tensor
# the paper's style-mixing bands, by feature-map resolution (inclusive)
BANDS: dict[str, tuple[int, int]] = {"coarse": (4, 8), "middle": (16, 32),
                                     "fine": (64, 1 << 30)}


class StyleGAN2Config(StrictModel):
    """Options of the StyleGAN2 pair."""

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
    demodulate: bool = Field(True, description="weight demodulation in G's convs")
    fused_modconv: bool = Field(False, description="modulated convs as one grouped conv "
                                "(True) or as shared-weight convs with scaled activations "
                                "(False); same result, speed differs by device")
    mbstd_group: int = Field(4, ge=1, description="minibatch-stddev group size in D")
    mbstd_channels: int = Field(1, ge=1, description="minibatch-stddev feature maps")

    @field_validator("resolution")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        return check_resolution("stylegan2", v, RESOLUTIONS)

    @model_validator(mode="after")
    def _consistent(self) -> StyleGAN2Config:
        w4 = width(self, 4)
        if w4 % self.mbstd_channels:
            raise ValueError(f"mbstd_channels ({self.mbstd_channels}) must divide D's width "
                             f"at 4x4 ({w4} = min(channel_base // 4, channel_max))")
        return self


def width(cfg: StyleGAN2Config, res: int) -> int:
    """Channels at feature-map side ``res``."""
    return max(1, min(cfg.channel_base // res, cfg.channel_max))


def _log2(res: int) -> int:
    return res.bit_length() - 1


class MappingNetwork(nn.Module):
    """z (+ class) -> w, broadcast to ``num_ws`` copies, with optional truncation."""

    def __init__(self, cfg: StyleGAN2Config, num_ws: int) -> None:
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
        x = _normalize(z)
        if self.embed is not None:
            assert labels is not None
            x = torch.cat([x, _normalize(self.embed(labels).to(x.dtype))], dim=1)
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


def _normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Divide each row by its root mean square."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


class SynthesisBlock(nn.Module):
    """One resolution: [const 4x4 | up-conv], conv, toRGB."""

    def __init__(self, cfg: StyleGAN2Config, res: int) -> None:
        super().__init__()
        c_out = width(cfg, res)
        fused = cfg.fused_modconv
        self.res, self.k = res, _log2(res) - 2
        if res == 4:
            self.const = nn.Parameter(torch.randn(c_out, 4, 4))
            self.conv0 = None
        else:
            self.conv0 = StyleConv(width(cfg, res // 2), c_out, cfg.w_dim, res, up=True,
                                   demodulate=cfg.demodulate, fused=fused)
        self.conv1 = StyleConv(c_out, c_out, cfg.w_dim, res, demodulate=cfg.demodulate,
                               fused=fused)
        self.torgb = ToRGB(c_out, cfg.channels, cfg.w_dim, fused=fused)

    def ws_index(self) -> dict[str, int]:
        """The ws index each layer of this block reads."""
        if self.conv0 is None:
            return {"conv1": 0, "torgb": 1}
        return {"conv0": 2 * self.k, "conv1": 2 * self.k + 1, "torgb": 2 * self.k + 1}


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image, summing upsampled toRGB outputs."""

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        self.resolution, self.w_dim = cfg.resolution, cfg.w_dim
        self.num_ws = 2 * _log2(cfg.resolution) - 2
        self.blocks = nn.ModuleDict({f"b{r}": SynthesisBlock(cfg, r)
                                     for r in (2**i for i in range(2, _log2(cfg.resolution) + 1))})
        self.register_buffer("kernel", fir_kernel(), persistent=False)

    def _check(self, ws: torch.Tensor) -> None:
        if ws.dim() != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape (N, {self.num_ws}, {self.w_dim}) (one w per "
                             f"style input; see G.mapping), got {tuple(ws.shape)}")

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-layer style vectors (the affine maps' outputs), keyed 'b{res}.{layer}'."""
        self._check(ws)
        out: dict[str, torch.Tensor] = {}
        for name, block in self.blocks.items():
            for layer, i in block.ws_index().items():
                out[f"{name}.{layer}"] = getattr(block, layer).affine(ws[:, i])
        return out

    def forward(self, ws: torch.Tensor, noise_mode: NoiseModeArg = "auto",
                noise_generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(ws)
        mode: NoiseMode = _noise_mode(noise_mode, self.training)
        x = img = None
        for block in self.blocks.values():
            idx = block.ws_index()
            if block.conv0 is None:
                x = block.const.to(ws.dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            else:
                x = block.conv0(x, ws[:, idx["conv0"]], mode, noise_generator)
            x = block.conv1(x, ws[:, idx["conv1"]], mode, noise_generator)
            y = block.torgb(x, ws[:, idx["torgb"]])
            img = y if img is None else upsample2d(img, self.kernel) + y
        assert img is not None
        return img


def _noise_mode(mode: str, training: bool) -> NoiseMode:
    if mode == "auto":
        return "random" if training else "const"
    if mode not in ("random", "const", "none"):
        raise ValueError(f"noise_mode must be 'auto', 'random', 'const' or 'none', got "
                         f"{mode!r}")
    return mode  # type: ignore[return-value]


class StyleGAN2Generator(Generator):
    """Mapping + synthesis; ``forward(z, labels, truncation, truncation_cutoff, noise_mode)``."""

    kind = "image"
    truncation_space = "w"  # psi, applied in forward; sample_latents draws plain z

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes = cfg.z_dim, cfg.w_dim, cfg.num_classes
        self.sample_shape = (cfg.channels, cfg.resolution, cfg.resolution)
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
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

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-layer style vectors for ``ws``, keyed 'b{res}.conv0|conv1|torgb'."""
        return self.synthesis.styles(ws)

    def ws_indices(self, lo: int, hi: int) -> list[int]:
        """ws indices of the layers at feature-map resolutions ``lo``..``hi`` (inclusive)."""
        return [i for r in (2**k for k in range(2, _log2(self.sample_shape[-1]) + 1))
                if lo <= r <= hi for i in (2 * _log2(r) - 4, 2 * _log2(r) - 3)]

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
        self.synthesis._check(ws_dst)
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


class DiscriminatorBlock(nn.Module):
    """conv3 -> conv3 (FIR down) plus a 1x1 FIR-down skip, summed times sqrt(1/2)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(c_in, c_in, 3, activation="lrelu")
        self.conv1 = EqualConv2d(c_in, c_out, 3, activation="lrelu", down=True)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * math.sqrt(0.5)


class StyleGAN2Discriminator(nn.Module):
    """Residual D: fromRGB, blocks down to 4x4, mbstd, conv, FC, projection head."""

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        res = cfg.resolution
        self.from_rgb = EqualConv2d(cfg.channels, width(cfg, res), 1, activation="lrelu")
        blocks = []
        while res > 4:
            blocks.append(DiscriminatorBlock(width(cfg, res), width(cfg, res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        c4 = width(cfg, 4)
        self.mbstd = MinibatchStdDev(cfg.mbstd_group, cfg.mbstd_channels)
        self.conv = EqualConv2d(c4 + cfg.mbstd_channels, c4, 3, activation="lrelu")
        self.fc = EqualLinear(c4 * 16, c4, activation="lrelu")
        self.head = ProjectionHead(c4, cfg.num_classes)
        self.head.linear = EqualLinear(c4, 1)  # type: ignore[assignment]
        if cfg.num_classes:
            self.head.embed = EqualEmbedding(cfg.num_classes, c4)  # type: ignore[assignment]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.blocks(self.from_rgb(x))
        h = self.conv(self.mbstd(h))
        return self.head(self.fc(h.flatten(1)), labels)


register_model(ModelSpec(
    name="stylegan2", kind="image", config_cls=StyleGAN2Config,
    build_generator=StyleGAN2Generator, build_discriminator=StyleGAN2Discriminator,
    description="StyleGAN2: mapping network, modulated convs with demodulation, noise, "
                "skip toRGB, residual D with minibatch stddev; W-space truncation and "
                "style mixing",
))
