"""The process group of a torchrun/DDP run: who this process is, and the few collectives
the training loop needs (flags, means, buffer averages, RNG states, a step to agree on).

Single-process training uses the same calls; with one process they do nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn

from ganforge.errors import ConfigError

# Collectives wait this long for a peer; rank 0 may spend minutes evaluating.
TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class Dist:
    """Rank, world size and local rank of this process (0, 1, 0 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes every file of the run; the others only compute."""
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (dim 0)."""
        if not self.enabled:
            return batch
        n = batch.shape[0] // self.world
        return batch[self.rank * n:(self.rank + 1) * n]

    # ------------------------------------------------------------ collectives
    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean of a tensor over ranks (on the CPU, so gloo serves any device)."""
        if not self.enabled:
            return values
        t = values.detach().float().cpu().clone()
        torch_dist.all_reduce(t)
        return (t / self.world).to(values.device, values.dtype)

    def average_buffers(self, *modules: nn.Module) -> None:
        """Average floating-point buffers (BatchNorm running statistics) over ranks, so the
        networks, and the EMA copies made from them, are the same on every rank."""
        if not self.enabled:
            return
        buffers = [b for m in modules for b in m.buffers() if b.is_floating_point()]
        if not buffers:
            return
        flat = self.mean(torch.cat([b.detach().reshape(-1).float() for b in buffers]))
        offset = 0
        for b in buffers:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Stack an equally shaped CPU tensor from every rank (rank order)."""
        if not self.enabled:
            return tensor[None]
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        torch_dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every rank."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.int64)
        torch_dist.broadcast(t, src=0)
        return int(t.item())

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()


_current = Dist()


def current() -> Dist:
    """The process group this process belongs to (single process unless initialised)."""
    return _current


def rank_seed(*parts: int) -> int:
    """A seed derived from several integers (e.g. seed, rank, step), well mixed."""
    return int(np.random.SeedSequence([abs(p) for p in parts]).generate_state(1)[0])


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _attempt_store() -> dict[str, object]:
    """Under torchrun the launcher's key-value store outlives a restart; without a prefix
    per attempt, restarted workers can read the dead workers' addresses and fail to
    connect. Each attempt gets its own key space."""
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    store = torch_dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                                is_master=False, timeout=TIMEOUT)
    return {"store": torch_dist.PrefixStore(f"ganforge/attempt-{attempt}", store),
            "rank": int(os.environ["RANK"]), "world_size": int(os.environ["WORLD_SIZE"])}


def init_from_env(device: str = "cpu") -> Dist:
    """Join the process group torchrun (or ``--nproc``) describes in the environment:
    gloo for CPU tensors, plus nccl for CUDA tensors when the run uses a GPU."""
    global _current
    if not launched_by_torchrun():
        return _current
    if not torch_dist.is_initialized():
        if not torch_dist.is_available():
            raise ConfigError("This PyTorch build has no torch.distributed; train with one "
                              "process (drop torchrun / --nproc).")
        backend = "gloo"
        if device.startswith("cuda"):
            if not torch_dist.is_nccl_available():
                raise ConfigError("--device cuda under torchrun needs NCCL, which this PyTorch "
                                  "build lacks; use --device cpu (gloo).")
            backend = "cpu:gloo,cuda:nccl"
        torch_dist.init_process_group(backend=backend, timeout=TIMEOUT, **_attempt_store())
    _current = Dist(rank=torch_dist.get_rank(), world=torch_dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    return _current


def shutdown(clean: bool = True) -> None:
    """Leave the process group. After success a barrier comes first, so no rank tears
    down a connection another rank still uses (which aborts the process at exit); after
    a failure the peers may be gone, so there is no barrier."""
    global _current
    if torch_dist.is_available() and torch_dist.is_initialized():
        try:
            if clean:
                torch_dist.barrier()
        finally:
            torch_dist.destroy_process_group()
    _current = Dist()


def check_batch_divides(batch_size: int, dist: Dist) -> None:
    """The configured batch is global: every rank gets an equal share."""
    if batch_size % dist.world:
        raise ConfigError(f"batch_size {batch_size} does not split evenly over {dist.world} "
                          f"processes; use a multiple of {dist.world} (batch_size is the "
                          "global batch, shared by all processes).")
