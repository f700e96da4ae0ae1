"""Tensor image helpers shared by the image sources (uint8 NCHW in, uint8 NCHW out)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganforge.errors import DataError

_CHUNK = 1024
_OUT_CHANNELS = (1, 3, 4)


def check_resolution(resolution: object) -> int:
    """Return ``resolution`` if it is a positive int, else raise DataError."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise DataError(
            f"resolution must be a positive integer for image sources, got {resolution!r}"
        )
    return resolution


def check_channels(channels: object) -> int | None:
    """Return ``channels`` if it is None, 1, 3 or 4, else raise DataError."""
    if channels is None:
        return None
    if isinstance(channels, bool) or not isinstance(channels, int) or channels not in (1, 3, 4):
        raise DataError(f"channels must be 1, 3, 4 or None, got {channels!r}")
    return channels


def resize_square(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Center-crop to a square, then bilinear-resize to ``resolution`` (antialiased when
    shrinking). Rounds and clamps back to uint8."""
    n, c, h, w = x.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, :, top : top + side, left : left + side]
    if side == resolution:
        return x.contiguous()
    out = torch.empty((n, c, resolution, resolution), dtype=torch.uint8)
    for start in range(0, n, _CHUNK):
        chunk = x[start : start + _CHUNK].to(torch.float32)
        chunk = F.interpolate(
            chunk,
            size=(resolution, resolution),
            mode="bilinear",
            align_corners=False,
            antialias=resolution < side,
        )
        out[start : start + _CHUNK] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _composite_white(color: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Composite ``color`` over a white background using ``alpha`` (integer math)."""
    c, a = color.to(torch.int32), alpha.to(torch.int32)
    return ((c * a + 255 * (255 - a) + 127) // 255).to(torch.uint8)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of (N, 3, H, W) uint8, exact for gray pixels."""
    r, g, b = rgb.to(torch.int32).unbind(1)
    return ((299 * r + 587 * g + 114 * b + 500) // 1000).to(torch.uint8).unsqueeze(1)


def convert_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Convert uint8 NCHW images between channel layouts.

    Input: 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA). Output: 1, 3 or 4 (None keeps 1/3/4 as is).
    Alpha is composited over white when dropped; an opaque alpha is added for 4.
    """
    c = x.shape[1]
    if channels is None:
        if c == 2:
            channels = 1
        else:
            return x.contiguous()
    if c not in (1, 2, 3, 4) or channels not in _OUT_CHANNELS:
        raise DataError(f"cannot convert {c}-channel images to {channels} channels")
    if c == channels:
        return x.contiguous()
    has_alpha = c in (2, 4)
    color, alpha = (x[:, :-1], x[:, -1:]) if has_alpha else (x, None)
    if channels == 4:
        color = color.expand(-1, 3, -1, -1) if color.shape[1] == 1 else color
        if alpha is None:
            alpha = torch.full_like(x[:, :1], 255)
        return torch.cat([color, alpha], dim=1).contiguous()
    if alpha is not None:
        color = _composite_white(color, alpha)
    if channels == 3 and color.shape[1] == 1:
        return color.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and color.shape[1] == 3:
        return _luma(color)
    return color.contiguous()
