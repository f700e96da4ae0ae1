"""Building blocks of style-based generators (Karras et al. 2019, 2020), pure PyTorch.

- :class:`EqualLinear`, :class:`EqualConv2d`, :class:`EqualEmbedding`: equalized learning
  rate. Weights are stored N(0, 1) (divided by the lr multiplier) and scaled at run time
  by ``weight_gain = lr_mul / sqrt(fan_in)``, so Adam's step is the same relative size
  for every layer; ``lr_mul`` < 1 slows a layer down (the mapping network uses 0.01).
- :func:`modulated_conv2d` / :class:`ModulatedConv2d`: a conv whose input channels are
  scaled per sample by a style vector, optionally demodulated (each output channel's
  weights renormalized to unit L2 norm, so unit-variance inputs give unit-variance
  outputs). Two equivalent implementations: a grouped conv with one weight per sample
  (``fused=True``) and a shared weight with activations scaled before and after.
- :class:`NoiseInjection`: per-pixel Gaussian noise with a learned per-channel strength;
  modes ``random`` (fresh draws), ``const`` (a fixed buffer saved with the model), ``none``.
- :class:`MinibatchStdDev`: the feature-wise standard deviation over groups of samples,
  appended as extra channels (a discriminator's view of batch variety).
- :func:`blur2d`, :func:`upsample2d`, :func:`downsample2d`: resampling with the separable
  [1, 3, 3, 1] FIR filter through plain (depthwise) convolutions; no custom ops.
- :class:`StyleConv` (affine -> modulated 3x3 conv [up] -> noise -> bias -> lrelu) and
  :class:`ToRGB` (affine -> modulated 1x1 conv without demodulation -> bias).

Every op runs on CPU and is twice differentiable (R1 and path-length penalties).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

NoiseMode = Literal["random", "const", "none"]
Activation = Literal["linear", "lrelu"]
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the second moment of a leaky-ReLU layer's output at 1
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)


def act(x: torch.Tensor, activation: Activation) -> torch.Tensor:
    """Leaky ReLU (slope 0.2) times sqrt(2), or the identity."""
    if activation == "lrelu":
        return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN
    return x


# ---------------------------------------------------------------------------------------
# FIR resampling
# ---------------------------------------------------------------------------------------

def fir_kernel(taps: tuple[float, ...] = FIR_TAPS) -> torch.Tensor:
    """The separable 2-D filter ``outer(taps, taps)``, normalized to sum 1."""
    k = torch.tensor(taps, dtype=torch.float32)
    k2 = torch.outer(k, k)
    return k2 / k2.sum()


def _depthwise(kernel: torch.Tensor, x: torch.Tensor, gain: float) -> torch.Tensor:
    c = x.shape[1]
    return (kernel.to(x.dtype) * gain).expand(c, 1, *kernel.shape).contiguous()


def blur2d(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int], gain: float = 1.0,
           stride: int = 1) -> torch.Tensor:
    """Filter every channel with ``kernel`` after zero padding (before, after) on both
    spatial axes; ``stride`` 2 keeps every other output (downsampling)."""
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, _depthwise(kernel, x, gain), stride=stride, groups=x.shape[1])


def upsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """2x upsampling: zero insertion, then the FIR filter (gain 4 keeps the mean).

    Written as one transposed depthwise conv; the [1, 3, 3, 1] filter gives bilinear
    interpolation with pixel centres aligned (output (H, W) -> (2H, 2W)).
    """
    f = kernel.shape[-1]
    return F.conv_transpose2d(x, _depthwise(kernel, x, 4.0), stride=2, padding=(f - 2) // 2,
                              groups=x.shape[1])


def downsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """2x downsampling: FIR filter, then every other pixel ((H, W) -> (H/2, W/2))."""
    p = kernel.shape[-1] - 2
    return blur2d(x, kernel, ((p + 1) // 2, p // 2), stride=2)


# ---------------------------------------------------------------------------------------
# Equalized learning rate
# ---------------------------------------------------------------------------------------

class EqualLinear(nn.Module):
    """Fully connected layer with equalized learning rate.

    ``weight`` ~ N(0, 1/lr_mul^2) is stored; the layer uses ``weight * weight_gain`` with
    ``weight_gain = lr_mul / sqrt(in_features)`` and ``bias * lr_mul`` (the stored bias
    starts at ``bias_init / lr_mul``, so the effective bias starts at ``bias_init``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 lr_mul: float = 1.0, bias_init: float = 0.0,
                 activation: Activation = "linear") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.lr_mul, self.activation = lr_mul, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul)) \
            if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.lr_mul if self.bias is not None else None
        return act(F.linear(x, w.to(x.dtype), None if b is None else b.to(x.dtype)),
                   self.activation)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, lr_mul={self.lr_mul}, "
                f"activation={self.activation}")


class EqualConv2d(nn.Module):
    """Conv with equalized learning rate (gain ``1/sqrt(c_in k k)``), 'same' padding, and
    optional FIR downsampling by 2 (blur, then a stride-2 conv)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 bias: bool = True, activation: Activation = "linear", down: bool = False,
                 lr_mul: float = 1.0) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.down, self.activation = kernel_size, down, activation
        self.lr_mul = lr_mul
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("kernel", fir_kernel(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = None if self.bias is None else (self.bias * self.lr_mul).to(x.dtype)
        if self.down:
            p = (self.kernel.shape[-1] - 2) + (self.kernel_size - 1)
            x = blur2d(x, self.kernel, ((p + 1) // 2, p // 2))
            x = F.conv2d(x, w, b, stride=2)
        else:
            x = F.conv2d(x, w, b, padding=self.kernel_size // 2)
        return act(x, self.activation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, "
                f"down={self.down}, activation={self.activation}")


class EqualEmbedding(nn.Module):
    """Embedding table stored N(0, 1) and scaled by ``1/sqrt(dim)`` at run time."""

    def __init__(self, num_embeddings: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_embeddings, dim))
        self.weight_gain = 1.0 / math.sqrt(dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return F.embedding(labels, self.weight * self.weight_gain)


# ---------------------------------------------------------------------------------------
# Modulated convolution
# ---------------------------------------------------------------------------------------

def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     demodulate: bool = True, up: bool = False,
                     kernel: torch.Tensor | None = None, fused: bool = True,
                     eps: float = 1e-8) -> torch.Tensor:
    """Convolve ``x`` (N, I, H, W) with ``weight`` (O, I, k, k) modulated per sample.

    ``w'[n, o, i] = weight[o, i] * styles[n, i]``; with ``demodulate`` every
    ``w'[n, o]`` is divided by its L2 norm over (i, kh, kw). ``up`` doubles the size: a
    stride-2 transposed conv followed by the FIR ``kernel`` (away from the border the same
    as :func:`upsample2d`, then a 'same' conv; at the border it does not cut the
    upsampled image to size before the conv). ``fused``: one grouped conv with the
    per-sample weights; otherwise the shared weight with activations scaled by the style
    before and the demodulation coefficients after (mathematically identical).
    """
    n, c_in, h, w_ = x.shape
    c_out, _, k, _ = weight.shape
    weight, styles = weight.to(x.dtype), styles.to(x.dtype)
    dcoefs = None
    if demodulate:
        wsq = weight.square().sum(dim=(2, 3))  # (O, I)
        dcoefs = torch.rsqrt(styles.square() @ wsq.t() + eps)  # (N, O)
    if fused:
        wn = weight[None] * styles[:, None, :, None, None]  # (N, O, I, k, k)
        if dcoefs is not None:
            wn = wn * dcoefs[:, :, None, None, None]
        xg = x.reshape(1, n * c_in, h, w_)
        if up:
            wt = wn.transpose(1, 2).flip(3, 4).reshape(n * c_in, c_out, k, k)
            out = F.conv_transpose2d(xg, wt, stride=2, groups=n)
        else:
            out = F.conv2d(xg, wn.reshape(n * c_out, c_in, k, k), padding=k // 2, groups=n)
        out = out.reshape(n, c_out, *out.shape[2:])
    else:
        xs = x * styles[:, :, None, None]
        if up:
            out = F.conv_transpose2d(xs, weight.transpose(0, 1).flip(2, 3), stride=2)
        else:
            out = F.conv2d(xs, weight, padding=k // 2)
        if dcoefs is not None:
            out = out * dcoefs[:, :, None, None]
    if up:
        assert kernel is not None, "up=True needs the FIR kernel"
        # pads that align the result with upsample2d() followed by a 'same' k x k conv
        f = kernel.shape[-1]
        before = (f - 1) - (f - 2) // 2 + k // 2 - (k - 1)
        out = blur2d(out, kernel, (before, f - k + 1 - before), gain=4.0)
    return out


class ModulatedConv2d(nn.Module):
    """The weight of a modulated conv (equalized lr), applied with per-sample styles."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 demodulate: bool = True, up: bool = False, fused: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.demodulate, self.up, self.fused = kernel_size, demodulate, up, \
            fused
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("kernel", fir_kernel(), persistent=False)

    def forward(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        return modulated_conv2d(x, self.weight * self.weight_gain, styles, self.demodulate,
                                self.up, self.kernel, self.fused)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, "
                f"demodulate={self.demodulate}, up={self.up}, fused={self.fused}")


# ---------------------------------------------------------------------------------------
# Noise, minibatch stddev, synthesis layers
# ---------------------------------------------------------------------------------------

class NoiseInjection(nn.Module):
    """``x + strength[c] * noise``: one N(0, 1) value per pixel shared by all channels,
    scaled by a learned per-channel strength (initially 0).

    Modes: ``random`` draws fresh noise every call (from ``generator`` if given, which
    must live on ``x``'s device); ``const`` uses the fixed ``noise_const`` buffer (saved
    with the model); ``none`` adds nothing.
    """

    def __init__(self, channels: int, resolution: int) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(channels))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: torch.Tensor, mode: NoiseMode = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:
        if mode == "none":
            return x
        if mode == "const":
            noise = self.noise_const.to(x.dtype)
        elif mode == "random":
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], generator=generator,
                                device=x.device, dtype=x.dtype)
        else:
            raise ValueError(f"noise mode must be 'random', 'const' or 'none', got {mode!r}")
        return x + noise * self.strength.to(x.dtype)[None, :, None, None]


class MinibatchStdDev(nn.Module):
    """Append ``num_channels`` feature maps holding the standard deviation of the
    features over groups of ``group_size`` samples (averaged over channels and pixels).

    Sample ``i`` belongs to group ``i % (N / G)``; G is the largest size at most
    ``group_size`` that divides the batch (a batch of one gets zeros).
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        f = self.num_channels
        if c % f:
            raise ValueError(f"minibatch stddev: {c} channels do not split into {f} groups")
        y = x.reshape(g, n // g, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # variance over the group
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (N/G, F)
        y = y.reshape(1, n // g, f, 1, 1).expand(g, -1, -1, h, w).reshape(n, f, h, w)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class StyleConv(nn.Module):
    """One synthesis layer: affine(w) -> modulated 3x3 conv (optionally upsampling by 2)
    -> noise -> bias -> leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 up: bool = False, demodulate: bool = True, fused: bool = True) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, demodulate, up, fused)
        self.noise = NoiseInjection(out_channels, resolution)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.resolution = resolution

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.conv(x, self.affine(w))
        x = self.noise(x, noise_mode, generator)
        return act(x + self.bias.to(x.dtype)[None, :, None, None], "lrelu")


class ToRGB(nn.Module):
    """affine(w) -> modulated 1x1 conv without demodulation -> bias (linear output)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int,
                 fused: bool = True) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, demodulate=False,
                                    fused=fused)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.affine(w)) + self.bias.to(x.dtype)[None, :, None, None]
