"""The standard alternating GAN recipe (n_critic D steps, one G step, EMA)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from ganforge.config import OptimConfig, RunConfig
from ganforge.losses import d_loss, g_loss, gradient_penalty, r1_penalty
from ganforge.registry import ModelSpec
from ganforge.train.ema import EMA
from ganforge.train.recipe import check_finite
from ganforge.train.stream import DataStream

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def make_adam(module: nn.Module, cfg: OptimConfig) -> torch.optim.Adam:
    """Adam with one network's own settings."""
    return torch.optim.Adam(module.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                            weight_decay=cfg.weight_decay)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base learning rate at ``step`` (stateless, so resume is exact)."""
    progress = step / max(total, 1)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def grad_norm(module: nn.Module) -> torch.Tensor:
    """Total L2 norm of a module's gradients."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())


class GANRecipe:
    """Minimax / non-saturating / LSGAN / WGAN-GP / hinge, with optional R1 and GP."""

    def __init__(self, config: RunConfig, spec: ModelSpec, model_cfg: BaseModel,
                 device: torch.device) -> None:
        self.cfg, self.device = config, device
        self.G = spec.build_generator(model_cfg).to(device)
        self.D = spec.build_discriminator(model_cfg).to(device)
        self.opt_g = make_adam(self.G, config.g_optim)
        self.opt_d = make_adam(self.D, config.d_optim)
        self.ema = EMA(self.G, config.ema_decay, config.ema_start)
        # draws happen on the CPU and move to the device, so the RNG state (and a resumed
        # run) does not depend on the device
        self.rng = torch.Generator().manual_seed(config.seed + 1)

    # ---------------------------------------------------------------- one step
    def _latents(self, n: int) -> torch.Tensor:
        return self.G.sample_latents(n, generator=self.rng).to(self.device, non_blocking=True)

    def _d_step(self, step: int, x: torch.Tensor, y: torch.Tensor | None,
                fake: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, logs = self.cfg, {}
        if cfg.r1_gamma > 0:
            x = x.detach().requires_grad_(True)
        real_logits, fake_logits = self.D(x, y), self.D(fake.detach(), y)
        loss = d_loss(cfg.loss, real_logits, fake_logits)
        logs["loss_d"] = loss.detach()
        if cfg.r1_gamma > 0:
            logs["r1"] = r1_penalty(real_logits, x)
            loss = loss + 0.5 * cfg.r1_gamma * logs["r1"]
        if cfg.loss == "wgan-gp" and cfg.gp_weight > 0:
            alpha = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=self.rng)
            logs["gp"] = gradient_penalty(lambda t: self.D(t, y), x, fake,
                                          alpha=alpha.to(self.device, x.dtype))
            loss = loss + cfg.gp_weight * logs["gp"]
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        logs["grad_norm_d"] = grad_norm(self.D)
        check_finite("discriminator", step + 1, loss=loss, grad_norm=logs["grad_norm_d"])
        self.opt_d.step()
        logs["d_real"], logs["d_fake"] = real_logits.detach().mean(), fake_logits.detach().mean()
        return {k: v.detach() for k, v in logs.items()}

    def _set_lr(self, step: int) -> None:
        factor = lr_factor(self.cfg.lr_schedule, step, self.cfg.steps)
        for opt, base in ((self.opt_g, self.cfg.g_optim.lr), (self.opt_d, self.cfg.d_optim.lr)):
            for group in opt.param_groups:
                group["lr"] = base * factor

    def train_step(self, step: int, stream: DataStream) -> dict[str, torch.Tensor]:
        self._set_lr(step)
        self.G.train()
        self.D.train()
        for i in range(self.cfg.n_critic):
            x, y = stream.next()
            last = i == self.cfg.n_critic - 1
            with torch.set_grad_enabled(last):  # the last fake batch is reused by the G step
                fake = self.G(self._latents(x.shape[0]), y)
            logs = self._d_step(step, x, y, fake)
        self.D.requires_grad_(False)
        try:
            loss_g = g_loss(self.cfg.loss, self.D(fake, y))
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:
            self.D.requires_grad_(True)
        logs["loss_g"], logs["grad_norm_g"] = loss_g.detach(), grad_norm(self.G)
        check_finite("generator", step + 1, loss=loss_g, grad_norm=logs["grad_norm_g"])
        self.opt_g.step()
        self.ema.update(self.G, step)
        return logs

    # ---------------------------------------------------------------- export
    @torch.no_grad()
    def export_generator(self, stat_batches: int = 16, batch: int = 64) -> nn.Module:
        """EMA generator copy; BatchNorm statistics recomputed for the averaged weights."""
        g = copy.deepcopy(self.ema.model)
        bns = [m for m in g.modules() if isinstance(m, _BN)]
        if bns:
            momenta = [m.momentum for m in bns]
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the batches below
            g.train()
            rng = torch.Generator().manual_seed(self.cfg.seed + 3)
            for _ in range(stat_batches):
                z = g.sample_latents(batch, generator=rng).to(self.device)
                y = None
                if g.num_classes:
                    y = torch.randint(g.num_classes, (batch,), generator=rng).to(self.device)
                g(z, y)
            for m, momentum in zip(bns, momenta, strict=True):
                m.momentum = momentum
        return g.eval()

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": self.ema.model.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.ema.model.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for opt, cfg in ((self.opt_g, self.cfg.g_optim), (self.opt_d, self.cfg.d_optim)):
            for group in opt.param_groups:  # settings changed on resume take effect
                group.update(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                             weight_decay=cfg.weight_decay)
        self.rng.set_state(state["rng"])
