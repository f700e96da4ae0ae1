"""Decode one image file with Pillow into a square uint8 array.

Modes are normalised to L (1 channel), LA (2), RGB (3) or RGBA (4): 1/L/I/I;16/F become L
(16-bit data scaled to 8 bits), LA/La stay LA, P/PA/RGB/CMYK/YCbCr/... become RGB, or RGBA
when the image carries transparency (alpha, or a ``transparency`` entry). EXIF orientation
is applied. Alpha is kept here; dropping it (over white) is up to the caller.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def _gray_16_to_8(im: Image.Image) -> Image.Image:
    """Scale an I/I;16/F image to 8-bit L (values above 255 are read as 16-bit data)."""
    arr = np.asarray(im).astype(np.float64)
    if arr.max(initial=0) > 255:
        arr = arr / 257.0
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), mode="L")


def normalise_mode(im: Image.Image) -> Image.Image:
    """Convert a loaded image to L, LA, RGB or RGBA."""
    mode = im.mode
    transparent = "transparency" in im.info
    if mode.startswith("I") or mode == "F":
        return _gray_16_to_8(im)
    if mode == "1":
        return im.convert("L")
    if mode == "L":
        if transparent:
            return im.convert("LA")
        return im
    if mode in ("LA", "La"):
        return im.convert("LA") if mode == "La" else im
    if mode in ("RGBA", "RGBa", "PA") or transparent:
        return im.convert("RGBA")
    return im.convert("RGB") if mode != "RGB" else im


def decode_image(path: Path, resolution: int) -> np.ndarray:
    """Open, fully decode, normalise and fit ``path`` to ``resolution``; (R, R, C) uint8.

    The image is scaled so its shorter side is ``resolution`` and center-cropped
    (``ImageOps.fit`` with LANCZOS). Raises whatever Pillow raises on a bad file.
    """
    with Image.open(path, formats=["PNG", "JPEG", "WEBP"]) as src:
        src.load()
        im = ImageOps.exif_transpose(src) or src
        im = normalise_mode(im)
        im = ImageOps.fit(im, (resolution, resolution), method=Image.Resampling.LANCZOS)
        arr = np.asarray(im)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr, dtype=np.uint8)
