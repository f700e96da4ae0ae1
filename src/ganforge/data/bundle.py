"""The in-memory data set handed to training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch


@dataclass
class DataBundle:
    """A whole data set in memory.

    Images are stored as contiguous uint8 ``(N, C, H, W)``; points as float32 ``(N, D)``.
    """

    name: str
    spec: str
    kind: Literal["image", "points"]
    data: torch.Tensor
    labels: torch.Tensor | None = None
    num_classes: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind == "image":
            if self.data.dtype != torch.uint8 or self.data.ndim != 4:
                raise ValueError("image data must be uint8 (N, C, H, W)")
            self.data = self.data.contiguous()
        elif self.kind == "points":
            if self.data.dtype != torch.float32 or self.data.ndim != 2:
                raise ValueError("point data must be float32 (N, D)")
        else:
            raise ValueError(f"unknown kind {self.kind!r}")
        labels = self.labels
        if labels is not None and (
            labels.dtype != torch.int64 or labels.shape != (len(self.data),)
        ):
            raise ValueError("labels must be int64 of shape (N,)")

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` or ``(D,)``."""
        return tuple(self.data.shape[1:])

    @property
    def channels(self) -> int | None:
        """Channel count of images, None for points."""
        return int(self.data.shape[1]) if self.kind == "image" else None

    @property
    def resolution(self) -> int | None:
        """Side length of (square) images, None for points."""
        return int(self.data.shape[2]) if self.kind == "image" else None

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return samples ``index`` as float32 (images in [-1, 1]) and their labels."""
        x = self.data[index]
        if self.kind == "image":
            x = x.to(torch.float32).div_(127.5).sub_(1.0)
        y = self.labels[index] if self.labels is not None else None
        return x, y
