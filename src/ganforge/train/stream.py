"""Seeded, resumable mini-batch stream over an in-memory data bundle."""

from __future__ import annotations

from typing import Any

import torch

from ganforge.data import DataBundle
from ganforge.errors import ConfigError
from ganforge.train.distributed import Dist


def check_batch_size(batch_size: int, data: DataBundle) -> None:
    """A batch must fit in the data set (the stream drops the ragged last batch)."""
    if batch_size > len(data):
        raise ConfigError(f"batch_size {batch_size} is larger than the data set "
                          f"'{data.spec}' ({len(data)} samples); lower --batch-size.")


class DataStream:
    """Shuffles once per epoch with its own generator; drops the ragged last batch.

    Its whole state (generator, permutation, position) is saved with a checkpoint,
    so a resumed run sees exactly the batches an uninterrupted one would.

    Distributed, it is the sampler: every rank shuffles alike, walks the same global
    batches and keeps its own slice of each, so the ranks see disjoint samples and
    together exactly what one process would see with the same ``batch_size``.
    """

    def __init__(self, bundle: DataBundle, batch_size: int, seed: int,
                 device: torch.device | str = "cpu", with_labels: bool = True,
                 dist: Dist | None = None) -> None:
        check_batch_size(batch_size, bundle)
        self.bundle, self.batch_size, self.device = bundle, batch_size, torch.device(device)
        self.dist = dist or Dist()
        self.with_labels = with_labels and bundle.labels is not None
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.pos = 0, 0
        self.perm = torch.randperm(len(bundle), generator=self.generator)

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's share of the next global batch (x, labels) on the stream's device."""
        if self.pos + self.batch_size > len(self.perm):
            self.epoch += 1
            self.pos = 0
            self.perm = torch.randperm(len(self.bundle), generator=self.generator)
        idx = self.dist.shard(self.perm[self.pos:self.pos + self.batch_size])
        self.pos += self.batch_size
        x, y = self.bundle.batch(idx)
        x = x.to(self.device, non_blocking=True)
        if not self.with_labels or y is None:
            return x, None
        return x, y.to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(),
                "epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm, self.epoch, self.pos = state["perm"].clone(), state["epoch"], state["pos"]
