"""Parse a data spec string and load the matching source into a DataBundle."""

from __future__ import annotations

import re
from pathlib import Path, PurePath

import numpy as np
import torch

from ganforge.data.bundle import DataBundle
from ganforge.data.transforms import (
    check_channels,
    check_resolution,
    convert_channels,
    resize_square,
)
from ganforge.errors import DataError

ACCEPTED = (
    "accepted data specs: 'digits' (scikit-learn 8x8 digits), 'mnist', 'mnist:DIR' "
    "(IDX files), 'stacked-mnist', 'stacked-mnist:DIR' (three MNIST digits as RGB, 1,000 "
    "modes), 'folder:PATH' (image files), 'npz:PATH' (arrays), 'csv:PATH' (numeric "
    "rows with a header), 'ring', 'grid' (2-D Gaussian mixtures)"
)
_PLAIN = ("digits", "mnist", "stacked-mnist", "ring", "grid")
_WITH_PATH = ("mnist", "stacked-mnist", "folder", "npz", "csv")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``spec`` into (source, path-or-None) without touching the disk."""
    if not isinstance(spec, str):
        raise DataError(f"data spec must be a string, got {type(spec).__name__}; {ACCEPTED}")
    text = spec.strip()
    if text in _PLAIN:
        return text, None
    head, sep, arg = text.partition(":")
    if sep and head in _WITH_PATH:
        if not arg.strip():
            raise DataError(f"data spec {spec!r} is missing a path after '{head}:'")
        return head, arg.strip()
    hint = ""
    if text.endswith((".npz", ".npy")):
        hint = f" (did you mean 'npz:{text}'?)"
    elif text.endswith(".csv"):
        hint = f" (did you mean 'csv:{text}'?)"
    elif "/" in text or "\\" in text:
        hint = f" (did you mean 'folder:{text}'?)"
    raise DataError(f"unknown data spec {spec!r}{hint}; {ACCEPTED}")


def spec_for(arg: str) -> str:
    """A data spec as given, or a bare folder / .npz / .npy / .csv path turned into one."""
    path = Path(arg).expanduser()
    if ":" in arg and not path.exists():
        return arg
    if path.is_dir():
        return f"folder:{arg}"
    if path.suffix in (".npz", ".npy", ".csv"):
        return f"{'csv' if path.suffix == '.csv' else 'npz'}:{arg}"
    if not path.exists() and ("/" in arg or "\\" in arg):
        raise DataError(f"{arg} does not exist; give an image folder, an .npz or .csv file or "
                        "a data source (digits, mnist, mnist:DIR, ...).")
    return arg


def source_short_name(spec: str) -> str:
    """Short, filesystem-safe name of a spec (no I/O): 'digits', 'mnist', 'stacked-mnist',
    'ring', 'grid', or the folder / npz / csv basename without extension."""
    source, arg = parse_spec(spec)
    if source in ("folder", "npz", "csv") and arg is not None:
        base = PurePath(arg.replace("\\", "/").rstrip("/"))
        name = base.name if source == "folder" else base.stem
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
        return name or source
    return source


def _image_bundle(
    spec: str,
    x: torch.Tensor,
    labels: torch.Tensor | None,
    num_classes: int | None,
    info: dict,
    resolution: int,
    channels: int | None,
) -> DataBundle:
    x = resize_square(x, resolution)
    if channels is not None:  # None keeps any channel count (npz may hold 2, 6, ...)
        x = convert_channels(x, channels)
    info = {**info, "kind": "image", "shape": [int(s) for s in x.shape]}
    return DataBundle(source_short_name(spec), spec, "image", x, labels, num_classes, info)


def read_rows(path: Path) -> tuple[np.ndarray, list[str]]:
    """Numeric rows (float64) and column names of a CSV with a header; rows with missing
    cells are refused."""
    from ganforge.data.table import read_table

    table = read_table(path)
    rows = table.to_numeric()
    bad = np.flatnonzero(np.isnan(rows).any(axis=1))
    if len(bad):
        raise DataError(f"{path}: {len(bad)} row(s) have missing cells (the first is data row "
                        f"{bad[0] + 1}); rows used here must be complete. Drop those rows or "
                        "fill them in first (e.g. by imputation).")
    return rows, [c.strip() for c in table.columns]


def _csv_bundle(spec: str, path: Path) -> DataBundle:
    rows, columns = read_rows(path)
    data = torch.from_numpy(rows.astype(np.float32))
    if not bool(torch.isfinite(data).all()):
        raise DataError(f"{path}: some values overflow float32; rescale those columns.")
    info = {"source": str(path), "kind": "points", "n": len(rows), "columns": columns}
    return DataBundle(source_short_name(spec), spec, "points", data, None, None, info)


def _num_classes(labels: torch.Tensor | None) -> int | None:
    return int(labels.max()) + 1 if labels is not None and len(labels) else None


def load_source(
    spec: str,
    *,
    resolution: int | None = 32,
    channels: int | None = None,
    skip_bad: bool = False,
    split: str = "all",
    seed: int = 0,
) -> DataBundle:
    """Load the data set named by ``spec`` (see ``ACCEPTED``) fully into memory.

    ``resolution`` (square side) and ``channels`` (1, 3, 4 or None = natural) apply to
    image sources and are ignored for points. ``split`` applies to MNIST only (stacked
    MNIST reads "all" as the training digits), ``skip_bad`` to folders only, ``seed`` to
    the generated sources (2-D mixtures, stacked MNIST) only.
    """
    source, arg = parse_spec(spec)
    name = source_short_name(spec)
    if source in ("ring", "grid"):
        from ganforge.data.mixtures import (
            MIXTURE_POINTS,
            MIXTURE_STD,
            mixture_centers,
            sample_mixture,
        )

        pts, labels = sample_mixture(source, MIXTURE_POINTS, seed)  # type: ignore[arg-type]
        info = {
            "source": f"{source} mixture",
            "kind": "points",
            "n": MIXTURE_POINTS,
            "seed": seed,
            "std": MIXTURE_STD[source],
        }
        return DataBundle(name, spec, "points", pts, labels, len(mixture_centers(source)), info)
    path = Path(arg).expanduser() if arg is not None else None
    if source == "csv" and path is not None:
        return _csv_bundle(spec, path)
    if source == "npz" and path is not None:
        from ganforge.data.npz import load_npz_arrays

        kind, arr, y, info = load_npz_arrays(path)
        labels = torch.from_numpy(y) if y is not None else None
        data = torch.from_numpy(np.ascontiguousarray(arr))
        if kind == "points":
            info = {**info, "kind": "points"}
            return DataBundle(name, spec, "points", data, labels, _num_classes(labels), info)
        res, ch = check_resolution(resolution), check_channels(channels)
        return _image_bundle(spec, data, labels, _num_classes(labels), info, res, ch)
    res, ch = check_resolution(resolution), check_channels(channels)
    if source == "digits":
        from ganforge.data.digits import load_digits_images

        x, labels, info = load_digits_images()
        return _image_bundle(spec, x, labels, 10, info, res, ch)
    if source == "mnist":
        from ganforge.data.mnist import load_mnist_arrays

        xs, ys, info = load_mnist_arrays(path, split)
        x = torch.from_numpy(xs).unsqueeze(1)
        labels = torch.from_numpy(ys)
        return _image_bundle(spec, x, labels, max(10, _num_classes(labels) or 0), info, res, ch)
    if source == "stacked-mnist":
        from ganforge.data.stacked import NUM_MODES, load_stacked_mnist

        x, labels, info = load_stacked_mnist(path, split, res, seed)
        return _image_bundle(spec, x, labels, NUM_MODES, info, res, ch)
    if source != "folder" or path is None:  # pragma: no cover - parse_spec guarantees it
        raise DataError(f"unknown data spec {spec!r}; {ACCEPTED}")
    from ganforge.data.folder import load_folder

    x, labels, class_names, info = load_folder(path, res, ch, skip_bad)
    n_cls = len(class_names) if class_names is not None else None
    return _image_bundle(spec, x, labels, n_cls, info, res, ch)


def exclude_classes(bundle: DataBundle, classes: list[int]) -> DataBundle:
    """The bundle without the samples of ``classes`` (checked against its labels).

    ``num_classes`` is kept, so class indices keep their meaning; ``info`` records
    what was removed.
    """
    if not classes:
        return bundle
    if bundle.labels is None:
        raise DataError(f"exclude_classes={classes} needs labelled data, but '{bundle.spec}' "
                        "has no labels; drop exclude_classes or use a labelled source "
                        "(digits, mnist, a folder of class subfolders, npz with 'y').")
    present = sorted(int(k) for k in torch.unique(bundle.labels))
    missing = [k for k in classes if k not in present]
    if missing:
        raise DataError(f"exclude_classes names {missing}, which '{bundle.spec}' does not "
                        f"contain (its classes: {present}); fix exclude_classes.")
    if set(present) <= set(classes):
        raise DataError(f"exclude_classes={classes} removes every class of '{bundle.spec}'; "
                        "keep at least one class to train on.")
    keep = ~torch.isin(bundle.labels, torch.tensor(classes, dtype=torch.int64))
    info = {**bundle.info, "excluded_classes": list(classes),
            "n_excluded": int((~keep).sum()), "n_kept": int(keep.sum())}
    if "shape" in info:
        info["shape"] = [int(keep.sum()), *info["shape"][1:]]
    return DataBundle(bundle.name, bundle.spec, bundle.kind, bundle.data[keep].contiguous(),
                      bundle.labels[keep], bundle.num_classes, info)


def limit_samples(bundle: DataBundle, limit: int | None, seed: int) -> DataBundle:
    """A seeded random subset of ``limit`` samples (kept in their original order)."""
    if limit is None or limit == len(bundle):
        return bundle
    if limit > len(bundle):
        raise DataError(f"data_limit={limit} exceeds the {len(bundle)} samples of "
                        f"'{bundle.spec}'; lower data_limit or drop it.")
    idx = torch.randperm(len(bundle), generator=torch.Generator().manual_seed(seed))[:limit]
    idx = idx.sort().values
    labels = None if bundle.labels is None else bundle.labels[idx]
    info = {**bundle.info, "data_limit": limit, "n_before_limit": len(bundle)}
    if "shape" in info:
        info["shape"] = [limit, *info["shape"][1:]]
    return DataBundle(bundle.name, bundle.spec, bundle.kind, bundle.data[idx].contiguous(),
                      labels, bundle.num_classes, info)


def standardize_points(bundle: DataBundle) -> DataBundle:
    """Points scaled to mean 0, std 1 per column; the statistics go into ``info``.

    A constant column keeps scale 1 (it is only shifted). Images are refused: they are
    already in [-1, 1].
    """
    if bundle.kind != "points":
        raise DataError(f"standardize applies to points and rows, but '{bundle.spec}' holds "
                        "images (already scaled to [-1, 1]); drop standardize.")
    x = bundle.data.double()
    mean, std = x.mean(0), x.std(0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return apply_standardization(bundle, {"mean": mean.tolist(), "std": std.tolist()})


def standardize(points: torch.Tensor, stats: dict[str, list[float]]) -> torch.Tensor:
    """Points in the data's units shifted and scaled by recorded column statistics
    (``{"mean", "std"}``), computed in float64 and returned as float32."""
    mean = torch.tensor(stats["mean"], dtype=torch.float64, device=points.device)
    std = torch.tensor(stats["std"], dtype=torch.float64, device=points.device)
    return ((points.double() - mean) / std).float()


def unstandardize(points: torch.Tensor, stats: dict[str, list[float]]) -> torch.Tensor:
    """Points in standardized units (e.g. samples of a generator trained with
    ``standardize``) mapped back to the data's units with the recorded ``{"mean", "std"}``."""
    std = torch.tensor(stats["std"], dtype=points.dtype, device=points.device)
    return points * std + torch.tensor(stats["mean"], dtype=points.dtype, device=points.device)


def apply_standardization(bundle: DataBundle, stats: dict[str, list[float]]) -> DataBundle:
    """Points shifted and scaled by given column statistics (``{"mean", "std"}``, as
    :func:`standardize_points` records them), e.g. real data brought into the units of
    a generator trained on standardized data."""
    columns = len(stats["mean"])
    if bundle.kind != "points" or tuple(bundle.data.shape[1:]) != (columns,):
        raise DataError(f"'{bundle.spec}' has samples of shape {tuple(bundle.sample_shape)}, "
                        f"but the standardization statistics are for {columns} columns; "
                        "use the data the run was trained on.")
    data = standardize(bundle.data, stats)
    info = {**bundle.info, "standardize": {"mean": [float(v) for v in stats["mean"]],
                                           "std": [float(v) for v in stats["std"]]}}
    return DataBundle(bundle.name, bundle.spec, "points", data, bundle.labels,
                      bundle.num_classes, info)
