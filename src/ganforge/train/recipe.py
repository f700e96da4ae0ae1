"""The recipe protocol: one training method's step, driven by the generic Trainer."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from ganforge.errors import NonFiniteError
from ganforge.models.base import Generator
from ganforge.train.distributed import Dist
from ganforge.train.stream import DataStream


class Recipe(Protocol):
    """What the Trainer needs from a training method."""

    G: Generator  # the generator being trained

    def train_step(self, step: int, stream: DataStream) -> dict[str, torch.Tensor]:
        """Run one step; return scalar tensors to log. Raise NonFiniteError on NaN/Inf."""
        ...

    def export_generator(self) -> nn.Module:
        """A copy of the generator to sample from and export (e.g. EMA weights)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    # Optional: ``step_record() -> dict`` (plain JSON values) describing the step just
    # run; the Trainer appends it to ``steps.jsonl`` after every step.


def check_finite(what: str, step: int, dist: Dist | None = None,
                 **values: torch.Tensor) -> None:
    """Raise NonFiniteError naming the first NaN/Inf value (one sync for all values).

    Distributed, every rank raises when any rank sees a non-finite value, so no rank
    applies an update the others refuse (or waits forever for one that stopped).
    """
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()])
    bad_here = not bool(torch.isfinite(stacked).all())
    if not (dist.any(bad_here) if dist is not None else bad_here):
        return
    if bad_here:
        found = ", ".join(f"{k}={v.item():.4g}" for k, v in values.items())
        where = f" on rank {dist.rank}" if dist is not None and dist.enabled else ""
    else:
        found, where = "seen on another rank", ""
    raise NonFiniteError(f"Training diverged at step {step}: the {what} update produced a "
                         f"non-finite value{where} ({found}); that update was not applied.")
