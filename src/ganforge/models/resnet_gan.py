"""Residual GAN pairs: the shared body of the SNGAN, SAGAN and BigGAN families.

G: z (or its first chunk) -> linear -> 4x4 -> residual up-blocks (BN-ReLU-up-conv3-BN-
ReLU-conv3, 1x1 shortcut) -> BN-ReLU-conv3-tanh. Its batch norms are conditional when
the model is class-conditional (gain and bias from the class) or hierarchical (from a
chunk of z). D: residual down-blocks (an optimized first block, then ReLU-conv3-ReLU-
conv3-avgpool), one block at 4x4, ReLU, sum pooling and a projection head.
Optional spectral norm in G and D and self-attention at one resolution in both.

The three families differ only in their defaults (``sngan.py``, ``sagan.py``,
``biggan.py``); every option stays available to all of them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from ganforge.config import StrictModel
from ganforge.models.base import Generator, check_resolution
from ganforge.nn import ProjectionHead
from ganforge.nn.attention import SelfAttention2d
from ganforge.nn.conditional_norm import ConditionalBatchNorm2d
from ganforge.nn.spectral import maybe_sn

RESOLUTIONS = (16, 32, 64, 128, 256, 512)


class ResNetGANConfig(StrictModel):
    """Options of a residual pair (the family configs change only the defaults)."""

    family: ClassVar[str] = "resnet"  # named in errors
    default_attention: ClassVar[bool] = False  # attention on unless attention_res is given

    resolution: int = 32
    channels: int = Field(1, ge=1)
    num_classes: int | None = Field(None, ge=2)
    z_dim: int = Field(128, ge=1)
    g_width: int = Field(32, ge=1, description="G channels of the last block; each block "
                         "nearer 4x4 doubles it (up to max_width)")
    d_width: int = Field(32, ge=1, description="D channels of the first block; each "
                         "block nearer 4x4 doubles it (up to max_width)")
    max_width: int = Field(512, ge=1)
    g_sn: bool = Field(False, description="spectral norm on G's layers")
    d_sn: bool = Field(True, description="spectral norm on D's layers")
    attention_res: int | None = Field(None, description="self-attention at this feature-map "
                                      "side in G and D (SAGAN); None = off")
    shared_embedding: int | None = Field(None, ge=1, description="BigGAN: one class "
                                         "embedding of this size shared by every "
                                         "conditional BN (None: per-layer class gains)")
    hierarchical_z: bool = Field(False, description="BigGAN: split z into one chunk per "
                                 "block (plus one for the input layer) and condition each "
                                 "block's batch norms on its chunk")
    init: Literal["ortho", "xavier", "normal"] = Field(
        "xavier", description="weight initialization (BigGAN: ortho; SNGAN: xavier)")

    @model_validator(mode="before")
    @classmethod
    def _attention_default(cls, data: object) -> object:
        """Families with attention put it at half the image side (at most 64 px)."""
        if cls.default_attention and isinstance(data, dict) and "attention_res" not in data:
            res = data.get("resolution", 32)
            if isinstance(res, int) and res in RESOLUTIONS:
                data = {**data, "attention_res": min(res // 2, 64)}
        return data

    @field_validator("resolution")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        return check_resolution(cls.family, v, RESOLUTIONS)

    @model_validator(mode="after")
    def _consistent(self) -> ResNetGANConfig:
        sides = [4 * 2**i for i in range(1, blocks(self.resolution))]
        if self.attention_res is not None and self.attention_res not in sides:
            raise ValueError(f"attention_res must be a feature-map side inside this "
                             f"{self.resolution} px model, one of {sides} (or null); got "
                             f"{self.attention_res}")
        if self.hierarchical_z and self.z_dim < blocks(self.resolution) + 1:
            raise ValueError(f"hierarchical_z splits z into {blocks(self.resolution) + 1} "
                             f"chunks; z_dim {self.z_dim} is too small")
        return self


def blocks(resolution: int) -> int:
    """Number of up-blocks (and down-blocks) between 4x4 and ``resolution``."""
    return resolution.bit_length() - 3


def z_chunks(z_dim: int, parts: int) -> list[int]:
    """Sizes of ``parts`` near-equal chunks of z (the first ones one larger)."""
    return [z_dim // parts + (1 if i < z_dim % parts else 0) for i in range(parts)]


def initialize(module: nn.Module, kind: str) -> None:
    """Initialize convs and linears (not embeddings or the conditional-norm maps)."""
    keep = {id(sub) for m in module.modules() if isinstance(m, ConditionalBatchNorm2d)
            for sub in m.modules()}
    for m in module.modules():
        if id(m) not in keep and isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") \
                else m.weight
            if kind == "ortho":
                nn.init.orthogonal_(w)
            elif kind == "xavier":
                nn.init.xavier_uniform_(w)
            else:
                nn.init.normal_(w, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _Norm(nn.Module):
    """Plain BN without a condition, conditional BN with one."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = ConditionalBatchNorm2d(channels, cond_dim) if cond_dim \
            else nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return self.norm(x, cond) if cond is not None else self.norm(x)


class UpBlock(nn.Module):
    """BN-ReLU-upsample-conv3-BN-ReLU-conv3, plus an upsampled 1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, sn: bool) -> None:
        super().__init__()
        self.bn1, self.bn2 = _Norm(c_in, cond_dim), _Norm(c_out, cond_dim)
        self.conv1 = maybe_sn(nn.Conv2d(c_in, c_out, 3, padding=1), sn)
        self.conv2 = maybe_sn(nn.Conv2d(c_out, c_out, 3, padding=1), sn)
        self.skip = maybe_sn(nn.Conv2d(c_in, c_out, 1), sn)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class DownBlock(nn.Module):
    """(ReLU)-conv3-ReLU-conv3-(avgpool), plus a 1x1-conv(-avgpool) shortcut.

    The first block of D skips the leading ReLU and pools its input before the shortcut
    conv ("optimized" block of SNGAN).
    """

    def __init__(self, c_in: int, c_out: int, sn: bool, down: bool = True,
                 first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = maybe_sn(nn.Conv2d(c_in, c_out, 3, padding=1), sn)
        self.conv2 = maybe_sn(nn.Conv2d(c_out, c_out, 3, padding=1), sn)
        self.skip = maybe_sn(nn.Conv2d(c_in, c_out, 1), sn) if (c_in != c_out or down) \
            else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:
            s = self.skip(F.avg_pool2d(s, 2)) if self.skip is not None else s
        else:
            s = self.skip(s) if self.skip is not None else s
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


def _g_widths(cfg: ResNetGANConfig) -> list[int]:
    n = blocks(cfg.resolution)
    return [min(cfg.max_width, cfg.g_width * 2 ** (n - i)) for i in range(n + 1)]


def _d_widths(cfg: ResNetGANConfig) -> list[int]:
    n = blocks(cfg.resolution)
    return [min(cfg.max_width, cfg.d_width * 2**i) for i in range(n + 1)]


class ResNetGenerator(Generator):
    """z (+ class) -> 4x4 -> residual up-blocks -> tanh image."""

    kind = "image"

    def __init__(self, cfg: ResNetGANConfig) -> None:
        super().__init__()
        self.z_dim, self.num_classes = cfg.z_dim, cfg.num_classes
        self.sample_shape = (cfg.channels, cfg.resolution, cfg.resolution)
        n = blocks(cfg.resolution)
        widths = _g_widths(cfg)
        self.chunks = z_chunks(cfg.z_dim, n + 1) if cfg.hierarchical_z else [cfg.z_dim]
        self.shared = nn.Embedding(cfg.num_classes, cfg.shared_embedding) \
            if cfg.num_classes and cfg.shared_embedding else None
        class_dim = 0
        if cfg.num_classes:
            class_dim = cfg.shared_embedding or cfg.num_classes  # embedding or one-hot
        cond_dims = [class_dim + (c if cfg.hierarchical_z else 0) for c in self.chunks[1:]] \
            if cfg.hierarchical_z else [class_dim] * n
        self.input = maybe_sn(nn.Linear(self.chunks[0], widths[0] * 16), cfg.g_sn)
        self.blocks = nn.ModuleList(UpBlock(widths[i], widths[i + 1], cond_dims[i], cfg.g_sn)
                                    for i in range(n))
        self.attention = nn.ModuleDict()
        if cfg.attention_res is not None:  # after the block that outputs that side
            i = blocks(cfg.attention_res) - 1
            self.attention[str(i)] = SelfAttention2d(widths[i + 1], cfg.g_sn)
        self.out_bn = nn.BatchNorm2d(widths[-1])
        self.out = maybe_sn(nn.Conv2d(widths[-1], cfg.channels, 3, padding=1), cfg.g_sn)
        self.widths = widths
        initialize(self, cfg.init)
        if self.shared is not None:
            nn.init.normal_(self.shared.weight, 0.0, 1.0)

    def _class_vector(self, labels: torch.Tensor | None, like: torch.Tensor
                      ) -> torch.Tensor | None:
        if labels is None:
            return None
        if self.shared is not None:
            return self.shared(labels)
        return F.one_hot(labels, self.num_classes).to(like.dtype)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        labels = self.check_labels(z.shape[0], labels)
        parts = list(z.split(self.chunks, dim=1))
        cls = self._class_vector(labels, z)
        if len(parts) > 1:
            conds: list[torch.Tensor | None] = [
                p if cls is None else torch.cat([cls, p], dim=1) for p in parts[1:]]
        else:
            conds = [cls] * len(self.blocks)
        h = self.input(parts[0]).view(z.shape[0], self.widths[0], 4, 4)
        for i, (block, cond) in enumerate(zip(self.blocks, conds, strict=True)):
            h = block(h, cond)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.out(F.relu(self.out_bn(h))))


class ResNetDiscriminator(nn.Module):
    """Residual down-blocks to 4x4, one more block, ReLU, sum pooling, projection head."""

    def __init__(self, cfg: ResNetGANConfig) -> None:
        super().__init__()
        n = blocks(cfg.resolution)
        widths = _d_widths(cfg)
        chain: list[nn.Module] = [DownBlock(cfg.channels, widths[0], cfg.d_sn, first=True)]
        side = cfg.resolution // 2
        if cfg.attention_res == side:
            chain.append(SelfAttention2d(widths[0], cfg.d_sn))
        for i in range(1, n):
            chain.append(DownBlock(widths[i - 1], widths[i], cfg.d_sn))
            side //= 2
            if cfg.attention_res == side:
                chain.append(SelfAttention2d(widths[i], cfg.d_sn))
        chain.append(DownBlock(widths[n - 1], widths[n], cfg.d_sn, down=False))
        self.features = nn.Sequential(*chain)
        self.head = ProjectionHead(widths[n], cfg.num_classes)
        self.head.linear = maybe_sn(self.head.linear, cfg.d_sn)
        if self.head.embed is not None:
            self.head.embed = maybe_sn(self.head.embed, cfg.d_sn)
        initialize(self, cfg.init)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        phi = F.relu(self.features(x)).sum(dim=(2, 3))
        return self.head(phi, labels)
