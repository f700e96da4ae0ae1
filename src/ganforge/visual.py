"""Image grids and scatter plots written to PNG (uint8 only at this file edge)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.checkpoint import atomic_write_bytes


def quantize(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] NCHW float -> uint8 NCHW tensor on the CPU: the pixels a PNG stores."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW float -> uint8 NHWC (channels squeezed for grayscale later)."""
    return quantize(images).permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile N images into one uint8 HWC array with ``nrow`` images per row."""
    arr = to_uint8(images)
    n, h, w, c = arr.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = arr[i]
    return grid


def _pil(array: np.ndarray) -> Image.Image:
    if array.shape[-1] == 1:
        return Image.fromarray(array[..., 0], mode="L")
    if array.shape[-1] == 2:  # no 2-channel PNG mode: show the first channel
        return Image.fromarray(array[..., 0], mode="L")
    if array.shape[-1] > 4:  # multi-channel data: show the first three as RGB
        return Image.fromarray(np.ascontiguousarray(array[..., :3]), mode="RGB")
    return Image.fromarray(array, mode="RGBA" if array.shape[-1] == 4 else "RGB")


def save_png(path: str | Path, array: np.ndarray, scale: int = 1) -> None:
    """Atomically write a uint8 HWC array as PNG, optionally upscaled (nearest)."""
    img = _pil(array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def save_grid(path: str | Path, images: torch.Tensor, nrow: int | None = None) -> None:
    """Save a sample grid; small images are upscaled so the grid is readable."""
    scale = max(1, 64 // images.shape[-1])
    save_png(path, make_grid(images, nrow), scale=scale)


def save_images(folder: str | Path, images: torch.Tensor, prefix: str = "") -> list[Path]:
    """Save each image as its own PNG, named by index."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(to_uint8(images)):
        p = folder / f"{prefix}{i:05d}.png"
        save_png(p, img)
        paths.append(p)
    return paths


def save_scatter(path: str | Path, points: torch.Tensor, reference: torch.Tensor | None = None,
                 title: str = "") -> None:
    """Scatter the first two dimensions of generated points (over reference points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if reference is not None:
        ref = reference.detach().cpu().numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="tab:gray", alpha=0.3, label="data")
    pts = points.detach().float().cpu().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:red", alpha=0.6, label="generated")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
