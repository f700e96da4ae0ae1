"""Stacked MNIST: three MNIST digits drawn independently as the R, G and B channels of one
image (1,000 modes), the mode-collapse benchmark of Unrolled GAN, VEEGAN and PacGAN.

The label of a stack is ``100 * d_R + 10 * d_G + d_B``. Stacks are drawn with a seeded
generator, so a given ``seed`` always yields the same data set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data.transforms import resize_square
from ganforge.errors import DataError

STACKS = 128_000  # the VEEGAN / PacGAN training-set size; 393 MB as uint8 at 32x32
NUM_MODES = 1000
CHANNELS = 3


def stack_labels(digits: torch.Tensor) -> torch.Tensor:
    """(N, 3) digits of the R, G, B channels -> int64 labels ``100*R + 10*G + B``."""
    if digits.ndim != 2 or digits.shape[1] != CHANNELS:
        raise DataError(f"expected (N, 3) channel digits, got shape {tuple(digits.shape)}")
    d = digits.long()
    return 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]


def stack_digits(images: torch.Tensor, labels: torch.Tensor, n: int, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` stacks of uint8 single-digit ``images`` (N, H, W) with int64 ``labels`` (N,):
    uint8 (n, 3, H, W) and their labels. Each channel's digit is drawn uniformly at random
    (with replacement) and independently of the others."""
    if images.ndim != 3 or images.dtype != torch.uint8:
        raise DataError(f"expected uint8 digits (N, H, W), got {images.dtype} "
                        f"{tuple(images.shape)}")
    if len(images) != len(labels) or len(images) == 0:
        raise DataError(f"need as many labels as digits (> 0), got {len(images)} images and "
                        f"{len(labels)} labels")
    if n < 1:
        raise DataError(f"the number of stacks must be at least 1, got {n}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(images), (n, CHANNELS), generator=gen)
    return images[idx].contiguous(), stack_labels(labels[idx])


def load_stacked_mnist(directory: Path | None, split: str, resolution: int, seed: int,
                       n: int = STACKS) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Stacked MNIST: uint8 (n, 3, resolution, resolution), int64 labels in [0, 1000), info.

    Digits come from the MNIST training split (``split`` "all" or "train"; "test" draws
    from the 10,000 test digits instead), resized once to ``resolution`` exactly as the
    ``mnist`` source does, then stacked (resizing is per channel, so the order does not
    matter). ``directory`` None finds MNIST as the ``mnist`` source does.
    """
    from ganforge.data.mnist import check_split, load_mnist_arrays

    digit_split = "train" if check_split(split) == "all" else split
    xs, ys, mnist_info = load_mnist_arrays(directory, digit_split)
    digits = resize_square(torch.from_numpy(np.ascontiguousarray(xs)).unsqueeze(1), resolution)
    x, labels = stack_digits(digits[:, 0], torch.from_numpy(ys).long(), n, seed)
    info = {
        "source": f"stacked MNIST from {mnist_info['source']}",
        "digit_split": digit_split,
        "n_digits": len(xs),
        "n": n,
        "seed": seed,
        "num_modes": NUM_MODES,
        "label": "100 * digit_R + 10 * digit_G + digit_B",
    }
    return x, labels, info
