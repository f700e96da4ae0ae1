"""StyleGAN (Karras et al., 2019) networks in pure PyTorch, for square images of 16-1024 px,
with optional progressive growing as in ProGAN (Karras et al., 2018).

Generator = the mapping network and W-space tools of :mod:`ganforge.models.style_base`
(8 FC layers to W, ``w_avg``, truncation psi with a cutoff, mixing bands, noise modes,
per-layer styles) + this synthesis network:

- a learned 4x4 constant (initialized to ones), then two layers per resolution;
- every layer: [2x upsampling with the [1, 3, 3, 1] FIR filter, then] a 3x3
  equalized-lr conv (none on the constant), per-pixel noise with a learned per-channel
  strength, bias, leaky ReLU, then **AdaIN**: instance normalization followed by a
  per-channel scale and bias computed from that layer's w by a learned affine map (the
  scale's bias starts at 1);
- resolution ``r = 4 * 2**k`` reads ws ``2k`` and ``2k + 1`` (the same layout as
  StyleGAN2, so mixing bands, truncation cutoff and projection work alike);
- a 1x1 toRGB (linear) at the output resolution, or at every resolution from
  ``start_resolution`` up when growing.

Discriminator: ProGAN's, as StyleGAN used it: fromRGB (1x1), per resolution a 3x3 conv
and a 3x3 conv with FIR downsampling, then the shared epilogue at 4x4 (minibatch
stddev, conv, FC, projection head for class-conditional use).

**Progressive growing** (``progressive: true``): both networks start at
``start_resolution`` and grow by :func:`ganforge.models.progressive.lod_at` (a fade-in
and a stable phase of ``phase_kimg`` thousand images per doubling). During a fade-in G
blends the new resolution's RGB output with the upscaled previous one; D blends its new
input path with the previous resolution's fromRGB; the recipes give the real images the
same fade as G's output (``progressive.fade_reals``), as ProGAN does. G's output is
always full size (nearest-neighbour upscaled from the working resolution).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from ganforge.models.progressive import Progressive
from ganforge.models.style_base import (
    DiscriminatorEpilogue,
    NoiseModeArg,
    StyleConfig,
    StyleGenerator,
    check_ws,
    log2,
    num_ws_for,
    resolutions_up_to,
    resolve_noise_mode,
    squash_output,
    width,
)
from ganforge.nn.style import (
    EqualConv2d,
    EqualLinear,
    NoiseInjection,
    NoiseMode,
    act,
    fir_kernel,
    upsample2d,
)
from ganforge.registry import ModelSpec, register_model


class StyleGANConfig(StyleConfig):
    """Options of the StyleGAN (v1) pair."""

    family: ClassVar[str] = "stylegan"

    progressive: bool = Field(False, description="grow both networks from "
                              "start_resolution (ProGAN's schedule)")
    start_resolution: int = Field(8, ge=4, description="first working resolution when "
                                  "growing (a power of two, at most resolution)")
    phase_kimg: float = Field(600.0, gt=0, description="thousands of images per fade-in "
                              "and per stable phase when growing")

    @model_validator(mode="after")
    def _start_fits(self) -> StyleGANConfig:
        s = self.start_resolution
        if self.progressive and (s & (s - 1) or s > self.resolution):
            raise ValueError(f"start_resolution must be a power of two from 4 to resolution "
                             f"({self.resolution}), got {s}")
        return self


class AdaIN(nn.Module):
    """Instance normalization, then a per-channel scale and bias from w (affine map; the
    scale's bias starts at 1, so a fresh layer passes the normalized features on)."""

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, 2 * channels)
        with torch.no_grad():
            assert self.affine.bias is not None
            self.affine.bias[:channels].fill_(1.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        scale, bias = style.to(x.dtype)[:, :, None, None].chunk(2, dim=1)
        return F.instance_norm(x, eps=1e-8) * scale + bias


class AdaINLayer(nn.Module):
    """[FIR up] -> [3x3 conv] -> noise -> bias -> leaky ReLU -> AdaIN(w)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int,
                 conv: bool = True, up: bool = False) -> None:
        super().__init__()
        self.up = up
        self.conv = EqualConv2d(c_in, c_out, 3, bias=False) if conv else None
        self.noise = NoiseInjection(c_out, resolution)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.adain = AdaIN(c_out, w_dim)
        self.register_buffer("kernel", fir_kernel(), persistent=False)

    def style(self, w: torch.Tensor) -> torch.Tensor:
        """This layer's style vector (scale, bias) for ``w``."""
        return self.adain.affine(w)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:
        if self.up:
            x = upsample2d(x, self.kernel)
        if self.conv is not None:
            x = self.conv(x)
        x = self.noise(x, noise_mode, generator)
        x = act(x + self.bias.to(x.dtype)[None, :, None, None], "lrelu")
        return self.adain(x, self.style(w))


class SynthesisBlock(nn.Module):
    """One resolution's two layers: (constant | up-conv) and conv."""

    def __init__(self, cfg: StyleGANConfig, res: int) -> None:
        super().__init__()
        c = width(cfg, res)
        self.res, self.k = res, log2(res) - 2
        if res == 4:
            self.const = nn.Parameter(torch.ones(c, 4, 4))
            self.layer0 = AdaINLayer(c, c, cfg.w_dim, res, conv=False)
        else:
            self.const = None
            self.layer0 = AdaINLayer(width(cfg, res // 2), c, cfg.w_dim, res, up=True)
        self.layer1 = AdaINLayer(c, c, cfg.w_dim, res)

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, mode: NoiseMode,
                generator: torch.Generator | None) -> torch.Tensor:
        if self.const is not None:
            x = self.const.to(ws.dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        assert x is not None
        x = self.layer0(x, ws[:, 2 * self.k], mode, generator)
        return self.layer1(x, ws[:, 2 * self.k + 1], mode, generator)


class SynthesisNetwork(Progressive):
    """ws (N, num_ws, w_dim) -> image; grows when the config asks."""

    def __init__(self, cfg: StyleGANConfig) -> None:
        super().__init__(cfg.resolution, cfg.start_resolution, cfg.progressive,
                         cfg.phase_kimg)
        self.w_dim, self.num_ws = cfg.w_dim, num_ws_for(cfg.resolution)
        self.output_tanh = cfg.output_tanh
        self.blocks = nn.ModuleDict({f"b{r}": SynthesisBlock(cfg, r)
                                     for r in resolutions_up_to(cfg.resolution)})
        self.torgb = nn.ModuleDict({f"b{r}": EqualConv2d(width(cfg, r), cfg.channels, 1)
                                    for r in self.resolutions()})

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-layer AdaIN styles (scale and bias, concatenated), keyed
        'b{res}.layer0|layer1'."""
        check_ws(ws, self.num_ws, self.w_dim)
        out: dict[str, torch.Tensor] = {}
        for name, block in self.blocks.items():
            out[f"{name}.layer0"] = block.layer0.style(ws[:, 2 * block.k])
            out[f"{name}.layer1"] = block.layer1.style(ws[:, 2 * block.k + 1])
        return out

    def forward(self, ws: torch.Tensor, noise_mode: NoiseModeArg = "auto",
                noise_generator: torch.Generator | None = None) -> torch.Tensor:
        check_ws(ws, self.num_ws, self.w_dim)
        mode = resolve_noise_mode(noise_mode, self.training)
        top, fade = self.level()
        x: torch.Tensor | None = None
        previous: torch.Tensor | None = None
        for block in self.blocks.values():
            if block.res > top:
                break
            x = block(x, ws, mode, noise_generator)
            if fade > 0 and block.res == top // 2:
                previous = self.torgb[f"b{block.res}"](x)
        assert x is not None
        img = self.torgb[f"b{top}"](x)
        if previous is not None:  # fading in: blend with the upscaled previous output
            img = torch.lerp(img, F.interpolate(previous, scale_factor=2, mode="nearest"),
                             fade)
        if top < self.resolution:
            img = F.interpolate(img, scale_factor=self.resolution // top, mode="nearest")
        return squash_output(img, self.output_tanh)


class StyleGANGenerator(StyleGenerator):
    """Mapping + StyleGAN (AdaIN) synthesis (see :class:`StyleGenerator` for the W-space
    tools)."""

    def __init__(self, cfg: StyleGANConfig) -> None:
        super().__init__(cfg, SynthesisNetwork(cfg))


class DiscriminatorBlock(nn.Module):
    """ProGAN's D block: 3x3 conv, then 3x3 conv with FIR downsampling by 2."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(c_in, c_in, 3, activation="lrelu")
        self.conv1 = EqualConv2d(c_in, c_out, 3, activation="lrelu", down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


class StyleGANDiscriminator(Progressive):
    """ProGAN/StyleGAN D: fromRGB, blocks down to 4x4, epilogue; grows with G."""

    def __init__(self, cfg: StyleGANConfig) -> None:
        super().__init__(cfg.resolution, cfg.start_resolution, cfg.progressive,
                         cfg.phase_kimg)
        self.from_rgb = nn.ModuleDict({
            f"b{r}": EqualConv2d(cfg.channels, width(cfg, r), 1, activation="lrelu")
            for r in self.resolutions()})
        self.blocks = nn.ModuleDict({
            f"b{r}": DiscriminatorBlock(width(cfg, r), width(cfg, r // 2))
            for r in resolutions_up_to(cfg.resolution)[:0:-1]})
        self.epilogue = DiscriminatorEpilogue(cfg)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        top, fade = self.level()
        if top < self.resolution:
            x = F.avg_pool2d(x, self.resolution // top)
        h = self.from_rgb[f"b{top}"](x)
        res = top
        while res > 4:
            h = self.blocks[f"b{res}"](h)
            if res == top and fade > 0:  # fading in: blend with the previous input path
                h = torch.lerp(h, self.from_rgb[f"b{res // 2}"](F.avg_pool2d(x, 2)), fade)
            res //= 2
        return self.epilogue(h, labels)


register_model(ModelSpec(
    name="stylegan", kind="image", config_cls=StyleGANConfig,
    build_generator=StyleGANGenerator, build_discriminator=StyleGANDiscriminator,
    description="StyleGAN: mapping network, learned constant, AdaIN styles, noise, "
                "ProGAN D with minibatch stddev; optional progressive growing; W-space "
                "truncation and style mixing",
))
