"""Exponential moving average of a model's weights (the EMA generator)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


class EMA:
    """``ema = decay * ema + (1 - decay) * model`` after ``start``; buffers are copied."""

    def __init__(self, model: nn.Module, decay: float | Callable[[int], float],
                 start: int = 0) -> None:
        """``decay``: a constant, or a function of the step (an EMA ramp-up)."""
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.start = decay, start

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        ema_p = list(self.model.parameters())
        src_p = [p.detach() for p in model.parameters()]
        decay = self.decay(step) if callable(self.decay) else self.decay
        if step < self.start or decay == 0.0:
            torch._foreach_copy_(ema_p, src_p)
        else:
            torch._foreach_lerp_(ema_p, src_p, 1.0 - decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
