"""How the networks run during training: autocast precision, gradient scaling,
memory layout, torch.compile and DistributedDataParallel wrapping.

The recipe keeps plain modules for EMA, export and checkpoints, and calls the wrapped
ones (which share the same parameters) for its forward passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ganforge.config import RunConfig
from ganforge.errors import ConfigError
from ganforge.models.progressive import growing
from ganforge.train.distributed import Dist

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(config: RunConfig, device: torch.device) -> None:
    """Refuse combinations that cannot work, before anything is built. (fp16 also runs
    on the CPU, emulated and slow: useful to check a GPU configuration on a laptop.)"""
    if config.precision == "bf16" and device.type == "cuda" \
            and not torch.cuda.is_bf16_supported():
        raise ConfigError("This GPU has no bfloat16 support; use --set precision=fp16 (with "
                          "its gradient scaler) or fp32.")


class Precision:
    """Autocast for forward passes and, for fp16, one gradient scaler per network."""

    def __init__(self, config: RunConfig, device: torch.device) -> None:
        self.device_type = device.type
        self.dtype = _DTYPES.get(config.precision)
        fp16 = config.precision == "fp16"
        self.scalers = {name: torch.amp.GradScaler(device.type, enabled=fp16)
                        for name in ("G", "D")}

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield

    def backward(self, net: str, loss: torch.Tensor) -> None:
        self.scalers[net].scale(loss).backward()

    def unscale(self, net: str, optimizer: torch.optim.Optimizer) -> None:
        """Bring gradients back to their true scale (before norms are measured)."""
        if self.scalers[net].is_enabled():
            self.scalers[net].unscale_(optimizer)

    def step(self, net: str, optimizer: torch.optim.Optimizer) -> bool:
        """Apply the update; False when fp16 gradients overflowed and it was skipped."""
        scaler = self.scalers[net]
        if not scaler.is_enabled():
            optimizer.step()
            return True
        before = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        return scaler.get_scale() >= before  # the scale only drops after an overflow

    def state_dict(self) -> dict[str, Any]:
        return {name: s.state_dict() for name, s in self.scalers.items() if s.is_enabled()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, s in self.scalers.items():
            if s.is_enabled() and name in state:
                s.load_state_dict(state[name])


def memory_format(config: RunConfig) -> torch.memory_format:
    return torch.channels_last if config.channels_last else torch.contiguous_format


def to_layout(x: torch.Tensor, config: RunConfig) -> torch.Tensor:
    """Images in the configured memory layout (other tensors unchanged)."""
    if config.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


class MultiInput(nn.Module):
    """Runs one network on several inputs in a single call.

    DistributedDataParallel expects one forward per backward; a discriminator judges
    real, fake (and interpolated) batches for one loss, so they go through one call.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, inputs: Sequence[torch.Tensor], labels: torch.Tensor | None = None
                ) -> list[torch.Tensor]:
        return [self.net(x, labels) for x in inputs]


def prepare_module(module: nn.Module, config: RunConfig) -> nn.Module:
    """Move a plain network to the configured memory layout (in place)."""
    if config.channels_last:
        module.to(memory_format=torch.channels_last)
    return module


def wrap_for_training(module: nn.Module, config: RunConfig, dist: Dist,
                      device: torch.device) -> Callable[..., Any]:
    """DDP (when distributed) and torch.compile (when asked) around a prepared module.

    Buffers are not broadcast by DDP: the recipe averages them over ranks after each
    step, which keeps BatchNorm statistics (and the EMA copied from them) identical.
    """
    wrapped: Any = module
    if dist.enabled:
        ids = [device.index] if device.type == "cuda" else None
        # a growing network leaves the layers above its working resolution unused
        wrapped = nn.parallel.DistributedDataParallel(
            module, device_ids=ids, forward_sync_buffers=False,
            find_unused_parameters=growing(module) is not None)
    if config.compile:
        wrapped = torch.compile(wrapped)
    return wrapped
