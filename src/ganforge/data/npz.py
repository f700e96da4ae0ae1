"""Arrays from a user's ``.npz`` (or ``.npy``) file.

Data key: ``x``, else ``images``, else ``data``, else the only non-label array. Labels:
``y`` or ``labels`` (integer, length N). Layouts: ndim 2 -> points (N, D); ndim 3 ->
grayscale (N, H, W); ndim 4 -> NHWC when the last dim is 1, 3 or 4 and dim 1 is not,
else NCHW (channels must be 1, 3 or 4).

Pixel values: uint8 is taken as is; other integer types must lie in 0..255. Float images
are read as [0, 1] intensities (``round(x * 255)``) when every value lies in [0, 1], else
as [-1, 1] (``round((x + 1) * 127.5)``) when every value lies in [-1, 1]; anything else,
or a non-finite value, is a DataError. So [-1, 1] data that happens to have no negative
value is read as [0, 1]; save such data as uint8 to be unambiguous.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.errors import DataError

DATA_KEYS = ("x", "images", "data")
LABEL_KEYS = ("y", "labels")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"npz file {path} does not exist; check the path after 'npz:'")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"x": loaded}
        with loaded as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(
                f"{path} contains an object (pickled) array, which is refused for safety; "
                "save plain numeric arrays (e.g. uint8 images) instead"
            ) from exc
        raise DataError(f"cannot read {path}: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}") from exc


def _pick_data(arrays: dict[str, np.ndarray], path: Path) -> np.ndarray:
    for key in DATA_KEYS:
        if key in arrays:
            return arrays[key]
    rest = [k for k in arrays if k not in LABEL_KEYS]
    if len(rest) == 1:
        return arrays[rest[0]]
    raise DataError(
        f"{path}: cannot tell which array holds the data (keys: {sorted(arrays)}); "
        f"name it one of {DATA_KEYS}"
    )


def _pick_labels(arrays: dict[str, np.ndarray], n: int, path: Path) -> np.ndarray | None:
    key = next((k for k in LABEL_KEYS if k in arrays), None)
    if key is None:
        return None
    y = arrays[key]
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (n,):
        raise DataError(
            f"{path}: labels {key!r} must be integers of shape ({n},), got {y.dtype} {y.shape}"
        )
    if n and y.min() < 0:
        raise DataError(f"{path}: labels {key!r} must be non-negative")
    return y.astype(np.int64)


def _images_to_uint8(x: np.ndarray, path: Path) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{path}: integer images must lie in 0..255")
        return x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: unsupported image dtype {x.dtype}")
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return np.round(x.astype(np.float64) * 255.0).astype(np.uint8)
    if lo >= -1.0 and hi <= 1.0:
        return np.round((x.astype(np.float64) + 1.0) * 127.5).astype(np.uint8)
    raise DataError(
        f"{path}: float images must lie in [0, 1] or [-1, 1], found [{lo:g}, {hi:g}]; "
        "save 0..255 images as uint8"
    )


def _to_nchw(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    _, a, b, c = x.shape
    if a == b and c != b:  # square N x H x W x C
        return x.transpose(0, 3, 1, 2)
    if b == c:  # square N x C x H x W
        return x
    if c in (1, 3, 4) and a not in (1, 3, 4):  # non-square: channels are the small axis
        return x.transpose(0, 3, 1, 2)
    if a in (1, 3, 4):
        return x
    raise DataError(f"{path}: cannot tell the channel axis of images shaped {x.shape}; "
                    "save them as N x C x H x W")


def load_npz_arrays(path: Path) -> tuple[str, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Return (kind, data, labels, info): images as uint8 NCHW (any H, W), points float32."""
    arrays = _read_arrays(path)
    x = _pick_data(arrays, path)
    if x.ndim not in (2, 3, 4) or x.shape[0] == 0 or 0 in x.shape:
        raise DataError(
            f"{path}: unsupported data shape {x.shape}; expected points (N, D), "
            "grayscale (N, H, W) or images (N, H, W, C) / (N, C, H, W) with N > 0"
        )
    if x.dtype.kind not in "uif":
        raise DataError(f"{path}: unsupported data dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{path}: the data contains NaN or infinite values")
    labels = _pick_labels(arrays, len(x), path)
    info: dict[str, Any] = {
        "source": str(path),
        "n": len(x),
        "dtype": str(x.dtype),
        "shape": [int(s) for s in x.shape],
    }
    if x.ndim == 2:
        pts = x.astype(np.float32)
        if not np.isfinite(pts).all():
            raise DataError(f"{path}: values overflow float32")
        return "points", pts, labels, info
    return "image", _images_to_uint8(_to_nchw(x, path), path), labels, info
