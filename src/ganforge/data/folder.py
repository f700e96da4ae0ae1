"""A directory tree of image files (optionally one subdirectory per class)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data.decode import decode_image
from ganforge.data.transforms import convert_channels
from ganforge.errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
MAX_LISTED = 20


def scan_folder(root: Path) -> tuple[list[Path], int]:
    """Image files under ``root`` (sorted relative paths) and the count of ignored files.

    Hidden files and anything inside hidden directories are ignored too.
    """
    if not root.exists():
        raise DataError(f"image folder {root} does not exist; check the path after 'folder:' "
                        "(relative paths start from the current directory)")
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (use 'npz:{root}' for an .npz file)")
    selected, ignored = [], 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(root)
        hidden = any(part.startswith(".") for part in rel.parts)
        if not hidden and path.suffix.lower() in EXTENSIONS:
            selected.append(rel)
        else:
            ignored += 1
    selected.sort(key=lambda p: p.as_posix())
    return selected, ignored


def _decode_or_error(path: Path, resolution: int) -> np.ndarray | str:
    try:
        return decode_image(path, resolution)
    except Exception as exc:  # Pillow raises many exception types on bad files
        return f"{type(exc).__name__}: {exc}"


def _stack(arrays: list[np.ndarray], channels: int | None, resolution: int) -> torch.Tensor:
    """Convert per-image (R, R, C) arrays (C in 1..4) into one uint8 (N, C_out, R, R)."""
    if channels is None:
        channels = 1 if all(a.shape[2] in (1, 2) for a in arrays) else 3
    out = torch.empty((len(arrays), channels, resolution, resolution), dtype=torch.uint8)
    for c in (1, 2, 3, 4):
        idx = [i for i, a in enumerate(arrays) if a.shape[2] == c]
        if idx:
            group = torch.from_numpy(np.stack([arrays[i] for i in idx])).permute(0, 3, 1, 2)
            out[torch.tensor(idx)] = convert_channels(group, channels)
    return out


def _class_labels(paths: list[Path]) -> tuple[torch.Tensor | None, list[str] | None]:
    """Labels from first-level subdirectory names, if every image lies in one."""
    if not paths or any(len(p.parts) < 2 for p in paths):
        return None, None
    names = sorted({p.parts[0] for p in paths})
    index = {name: i for i, name in enumerate(names)}
    return torch.tensor([index[p.parts[0]] for p in paths], dtype=torch.int64), names


def load_folder(
    root: Path, resolution: int, channels: int | None, skip_bad: bool
) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None, dict[str, Any]]:
    """Decode every image under ``root``; returns (images, labels, class_names, info)."""
    rel_paths, n_ignored = scan_folder(root)
    if not rel_paths:
        raise DataError(
            f"no images found in {root} ({n_ignored} other files ignored); accepted "
            f"extensions: {', '.join(EXTENSIONS)} (any case)"
        )
    with ThreadPoolExecutor() as pool:
        results = list(pool.map(lambda p: _decode_or_error(root / p, resolution), rel_paths))
    good = [(p, r) for p, r in zip(rel_paths, results, strict=True) if isinstance(r, np.ndarray)]
    bad = [(p, r) for p, r in zip(rel_paths, results, strict=True) if isinstance(r, str)]
    if bad and not skip_bad:
        path, reason = bad[0]
        raise DataError(
            f"cannot decode image {root / path} ({reason}); {len(bad)} of {len(rel_paths)} "
            "images are unreadable. Fix or remove them, or pass --skip-bad (skip_bad=True) "
            "to skip them"
        )
    if not good:
        raise DataError(f"all {len(rel_paths)} images in {root} are unreadable")
    kept = [p for p, _ in good]
    images = _stack([r for _, r in good], channels, resolution)
    labels, class_names = _class_labels(kept)
    info: dict[str, Any] = {
        "source": str(root),
        "n_files": len(rel_paths),
        "n_images": len(kept),
        "n_ignored": n_ignored,
        "n_skipped": len(bad),
        "skipped": [p.as_posix() for p, _ in bad[:MAX_LISTED]],
        "skipped_reasons": [r for _, r in bad[:MAX_LISTED]],
        "class_names": class_names,
    }
    return images, labels, class_names, info
