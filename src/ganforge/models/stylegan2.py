"""StyleGAN2 (Karras et al., 2020) networks in pure PyTorch, for square images of 16-1024 px.

Generator = the mapping network and W-space tools of :mod:`ganforge.models.style_base`
(ws layout, truncation psi with a cutoff, mixing bands, noise modes) + this synthesis
network: a learned 4x4 constant, then per resolution two modulated 3x3 convs (the first
upsampling by 2 with the [1, 3, 3, 1] FIR filter, except at 4x4 which has one), each with
noise and a per-layer affine map from w to its style; skip-connected toRGB outputs are
upsampled and summed (linear output, as in the paper: training does not squash it, so
values may leave [-1, 1] slightly). Resolution ``r = 4 * 2**k`` reads ws ``2k`` (first
conv) and ``2k + 1`` (second conv and toRGB); 4x4's conv reads 0 and its toRGB 1.

Discriminator: StyleGAN2's residual D: fromRGB 1x1, residual blocks (two 3x3 convs, the
second FIR-downsampling, plus a 1x1 FIR-downsampling skip, summed times sqrt(1/2)) down
to 4x4, minibatch stddev, 3x3 conv, FC, and a projection head (Miyato & Koyama 2018) for
class-conditional use. Equalized learning rate throughout; widths are
``min(channel_base // r, channel_max)`` at resolution r (small CPU-friendly defaults).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn

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
    NoiseMode,
    StyleConv,
    ToRGB,
    fir_kernel,
    upsample2d,
)
from ganforge.registry import ModelSpec, register_model


class StyleGAN2Config(StyleConfig):
    """Options of the StyleGAN2 pair."""

    family: ClassVar[str] = "stylegan2"

    demodulate: bool = Field(True, description="weight demodulation in G's convs")
    fused_modconv: bool = Field(False, description="modulated convs as one grouped conv "
                                "(True) or as shared-weight convs with scaled activations "
                                "(False); same result, speed differs by device")


class SynthesisBlock(nn.Module):
    """One resolution: [const 4x4 | up-conv], conv, toRGB."""

    def __init__(self, cfg: StyleGAN2Config, res: int) -> None:
        super().__init__()
        c_out = width(cfg, res)
        fused = cfg.fused_modconv
        self.res, self.k = res, log2(res) - 2
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
        self.num_ws, self.output_tanh = num_ws_for(cfg.resolution), cfg.output_tanh
        self.blocks = nn.ModuleDict({f"b{r}": SynthesisBlock(cfg, r)
                                     for r in resolutions_up_to(cfg.resolution)})
        self.register_buffer("kernel", fir_kernel(), persistent=False)

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-layer style vectors (the affine maps' outputs), keyed 'b{res}.{layer}'."""
        check_ws(ws, self.num_ws, self.w_dim)
        out: dict[str, torch.Tensor] = {}
        for name, block in self.blocks.items():
            for layer, i in block.ws_index().items():
                out[f"{name}.{layer}"] = getattr(block, layer).affine(ws[:, i])
        return out

    def forward(self, ws: torch.Tensor, noise_mode: NoiseModeArg = "auto",
                noise_generator: torch.Generator | None = None) -> torch.Tensor:
        check_ws(ws, self.num_ws, self.w_dim)
        mode: NoiseMode = resolve_noise_mode(noise_mode, self.training)
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
        return squash_output(img, self.output_tanh)


class StyleGAN2Generator(StyleGenerator):
    """Mapping + StyleGAN2 synthesis (see :class:`StyleGenerator` for the W-space tools)."""

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__(cfg, SynthesisNetwork(cfg))


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
    """Residual D: fromRGB, blocks down to 4x4, then the epilogue (mbstd, conv, FC,
    projection head)."""

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        res = cfg.resolution
        self.from_rgb = EqualConv2d(cfg.channels, width(cfg, res), 1, activation="lrelu")
        blocks = []
        while res > 4:
            blocks.append(DiscriminatorBlock(width(cfg, res), width(cfg, res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        self.epilogue = DiscriminatorEpilogue(cfg)
        self._register_load_state_dict_pre_hook(_rename_old_epilogue_keys)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.epilogue(self.blocks(self.from_rgb(x)), labels)


def _rename_old_epilogue_keys(state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Checkpoints written before the epilogue was shared with StyleGAN v1 keep D's end
    layers at ``mbstd/conv/fc/head``; load them into ``epilogue.*``."""
    for key in [k for k in state if k.startswith(prefix)]:
        rest = key[len(prefix):]
        if rest.split(".")[0] in ("conv", "fc", "head"):
            state[f"{prefix}epilogue.{rest}"] = state.pop(key)


register_model(ModelSpec(
    name="stylegan2", kind="image", config_cls=StyleGAN2Config,
    build_generator=StyleGAN2Generator, build_discriminator=StyleGAN2Discriminator,
    description="StyleGAN2: mapping network, modulated convs with demodulation, noise, "
                "skip toRGB, residual D with minibatch stddev; W-space truncation and "
                "style mixing",
))
